from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from matteralign.analysis.preprocess import preprocess


@given(arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 8)),
              elements=st.floats(-1e3, 1e3)))
def test_l2_rows_have_unit_norm_or_stay_zero(x):
    y = preprocess(x, "l2")
    norms = np.linalg.norm(y, axis=1)
    zero = ~x.any(axis=1)
    np.testing.assert_allclose(norms[~zero], 1.0, rtol=1e-12)
    assert np.all(norms[zero] == 0)


def test_methods():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 4))
    np.testing.assert_array_equal(preprocess(x, "none"), x)
    z = preprocess(x, "standardize")
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-12)
    c = preprocess(x, "center-l2")
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1)
    with pytest.raises(ValueError, match="unknown preprocessing"):
        preprocess(x, "whiten")
