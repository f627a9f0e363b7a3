"""The held-out design in one figure: test error on held-in and held-out molecules for the
rungs trained without the element and their twins, and each quantity's difference in
differences per pair of twins with the mean and its paired interval."""

from __future__ import annotations

import os

import numpy as np

from matteralign.analysis.held_out import QUANTITIES, SUBSETS, HeldOut
from matteralign.analysis.held_out_claims import PREDICTED, PRIMARY
from matteralign.plots.study import _pyplot, _save


def plot_held_out(held: HeldOut, output: str | os.PathLike[str]) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 1 + len(QUANTITIES), figsize=(3.1 * (1 + len(QUANTITIES)), 3.8))
    mae_ax = axes[0]
    for i, (restricted, twin) in enumerate(held.pairs):
        for model, colour in ((restricted, "tab:red"), (twin, "tab:blue")):
            if model in held.mae:
                mae_ax.plot([0, 1], [held.mae[model][s] for s in SUBSETS], marker="o",
                            color=colour, alpha=0.7,
                            label=("without " + held.element if model == restricted
                                   else "all chemistry") if i == 0 else None)
    mae_ax.set_xticks([0, 1], ["held-in", "held-out"])
    mae_ax.set_xlim(-0.3, 1.3)
    mae_ax.set_ylabel("test MAE (meV/atom)")
    mae_ax.set_title("energy error\n(design check)", fontsize=9)
    mae_ax.legend(fontsize=7)
    for ax, (quantity, what) in zip(axes[1:], QUANTITIES.items(), strict=True):
        did = held.did[quantity]
        jitter = np.linspace(-0.15, 0.15, len(did)) if len(did) > 1 else np.zeros(1)
        ax.scatter(jitter, did, color="grey", s=18, label="pairs of twins")
        value, low, high = held.mean_did(quantity)
        if np.isfinite(low):
            ax.errorbar([0.45], [value], yerr=[[value - low], [high - value]], fmt="D",
                        color="black", capsize=4, label="mean, 95% interval")
        ax.axhline(0, color="black", lw=0.8, ls=":")
        ax.set_xticks([])
        ax.set_xlim(-0.4, 0.8)
        sign = PREDICTED.get(quantity)
        predicted = {-1: "claim 4: < 0", 1: "claim 4: > 0"}.get(sign or 0, "shown")
        role = "verdict" if quantity == PRIMARY else "secondary"
        ax.set_title(f"DiD {what}\n({predicted}; {role})", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"held-out chemistry: rungs trained without {held.element} vs their twins "
                 f"({held.n_per_subset} held-in and held-out study molecules each)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    _save(fig, output, "held-out design: test error and difference in differences")
