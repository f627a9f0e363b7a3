from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def correlated(rng: np.random.Generator, n: int, dx: int, dy: int, noise: float = 0.5):
    """Two embeddings of the same latent points: a shared low-rank signal plus noise."""
    z = rng.normal(size=(n, 4))
    x = z @ rng.normal(size=(4, dx)) + noise * rng.normal(size=(n, dx))
    y = np.tanh(z @ rng.normal(size=(4, dy))) + noise * rng.normal(size=(n, dy))
    return x, y


def import_dadapy_parts():
    """dadapy's pure-python submodules without its package __init__.

    dadapy 0.3.4 wheels ship Cython extensions built against NumPy 1.x; with NumPy 2 the
    package __init__ (which imports the clustering extension) fails, but the TwoNN and
    information-imbalance code we compare against is pure numpy/scipy/sklearn.
    """
    spec = importlib.util.find_spec("dadapy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("dadapy not installed")
    try:
        import dadapy  # noqa: F401
    except ImportError:
        stub = types.ModuleType("dadapy")
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules["dadapy"] = stub
    from dadapy._utils.metric_comparisons import _return_imbalance
    from dadapy._utils.utils import compute_nn_distances
    from dadapy.id_estimation import IdEstimation

    return _return_imbalance, compute_nn_distances, IdEstimation
