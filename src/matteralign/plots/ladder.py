"""The trained ladder in one figure: each rung's learning curve, and its CKNNA to the most
accurate rung and to ANI-1x against its held-out test MAE, with the seed replicates' noise
ceiling (their CKNNA at each replicated size) as bands."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from matteralign.analysis.evidence import pair_value
from matteralign.analysis.ladder import Ladder
from matteralign.analysis.ladder_claims import ANI_REFERENCE, references, size_ceilings
from matteralign.io import MetricFile
from matteralign.plots.study import _pyplot, _save


def _ceiling_colours(n: int) -> list[Any]:
    """``n`` shades of purple, light to dark, for the ceiling bands (small to large sizes)."""
    import matplotlib

    return [matplotlib.colormaps["Purples"](0.4 + 0.5 * i / max(n - 1, 1)) for i in range(n)]


def plot_ladder(ladder: Ladder, cknna: MetricFile | None, output: str | os.PathLike[str]
                ) -> None:
    plt = _pyplot()
    fig, (curves, panel) = plt.subplots(1, 2, figsize=(11, 4.2))
    rungs = ladder.accuracy_ladder()
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(rungs), 1)))
    for colour, name in zip(colours, rungs, strict=True):
        curve = ladder.curves[name]
        curves.plot(curve[:, 0], curve[:, 1], color=colour, lw=1.2,
                    label=f"{int(ladder.value(name, 'size'))} molecules")
    for name in ladder.names:
        if name not in rungs:  # the seed replicates, thin
            curve = ladder.curves[name]
            curves.plot(curve[:, 0], curve[:, 1], color="grey", lw=0.6, alpha=0.6)
    curves.set_yscale("log")
    curves.set_xlabel("epoch")
    curves.set_ylabel("validation RMSE (kcal/mol)")
    curves.set_title("learning curves\n(grey: other seeds, held-out twins)", fontsize=9)
    curves.legend(fontsize=7)
    _alignment_panel(panel, ladder, rungs, cknna)
    fig.suptitle("QM9 ladder: ANI-1x architecture trained by the study (torchani NeuroChem "
                 "trainer)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    _save(fig, output, "ladder: learning curves; CKNNA against test MAE")


def _alignment_panel(ax: Any, ladder: Ladder, rungs: list[str],
                     cknna: MetricFile | None) -> None:
    ax.set_xlabel("held-out test MAE (meV/atom)")
    ax.set_ylabel("CKNNA")
    present = [m for m in rungs if cknna is not None and m in cknna.models]
    if cknna is None or len(present) < 2:
        ax.text(0.5, 0.5, "no cknna.h5 with the rungs", ha="center", transform=ax.transAxes)
        return
    mae = {m: 1000 * ladder.value(m, "test_mae_ev_per_atom") for m in present}
    best = min(present, key=lambda m: mae[m])
    for (reference, what, scored), marker in zip(references(ladder, cknna, present, best),
                                                 ("o", "^", "s"), strict=False):
        if reference not in cknna.models:
            continue
        others = [m for m in present if m != reference]
        x = [mae[m] for m in others]
        y = [pair_value(cknna, m, reference).raw for m in others]
        ax.plot(x, y, marker=marker, ls="-" if scored else "--",
                label=f"to {reference}" + ("" if reference == ANI_REFERENCE else
                                           f" ({what.split(' (')[0].replace('its ', '')})"))
    ceilings = size_ceilings(cknna, ladder)
    for colour, (size, ceiling) in zip(_ceiling_colours(len(ceilings)), ceilings.items(),
                                       strict=True):
        if np.isfinite(ceiling.low):
            ax.axhspan(ceiling.low, ceiling.high, alpha=0.15, color=colour)
        ax.axhline(ceiling.value, ls=":", color=colour, lw=1,
                   label=f"seed replicates, {size} molecules")
    ax.set_xscale("log")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax.set_title("alignment against accuracy\n(bands: seed replicates, 95% interval)",
                 fontsize=9)
