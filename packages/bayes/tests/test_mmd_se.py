"""The jackknife standard error of the unbiased MMD^2 against its Monte Carlo spread."""

import numpy as np
import pytest
from widelab_bayes import mmd2_jackknife_se, mmd2_unbiased


@pytest.mark.parametrize("shift", [0.0, 0.7], ids=["same", "shifted"])
def test_jackknife_se_matches_spread_over_repeats(shift):
    rng = np.random.default_rng(3)
    m, reps = 50, 200
    est, ses = [], []
    for _ in range(reps):
        x = rng.normal(size=(m, 2))
        y = rng.normal(size=(m, 2)) + np.array([shift, 0.0])
        est.append(float(mmd2_unbiased(x, y, 1.0)))
        ses.append(mmd2_jackknife_se(x, y, 1.0))
    ratio = np.mean(ses) / np.std(est, ddof=1)
    # the sample std over the repeats has relative standard error 1/sqrt(2 (reps - 1))
    noise = 4 / np.sqrt(2 * (reps - 1))
    if shift:
        # non-degenerate U-statistic: the jackknife is consistent; allow 4 standard errors
        # of the spread plus its O(1/m) small-sample bias (Efron and Stein 1981), ~10% here
        assert abs(ratio - 1.0) < noise + 0.1, ratio
    else:
        # equal distributions (degenerate): never below the spread (Efron-Stein
        # inequality), and conservative by less than a factor 2
        assert 1.0 - noise < ratio < 2.0, ratio


def test_jackknife_se_errors():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="same shape"):
        mmd2_jackknife_se(x, np.zeros((6, 2)), 1.0)
    with pytest.raises(ValueError, match="at least 3"):
        mmd2_jackknife_se(x[:2], x[:2], 1.0)
    with pytest.raises(ValueError, match="lengthscale"):
        mmd2_jackknife_se(x, x, 0.0)
