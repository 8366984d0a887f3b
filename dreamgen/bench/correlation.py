"""Does the bench predict policy success? Correlation of per-variant scores with success rates.

The hook for the paper's Table 2 link: one bench score and one policy success rate per
world-model variant, Pearson and Spearman with percentile-bootstrap intervals over variants.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def _pearson(x, y) -> float:
    return float(stats.pearsonr(x, y)[0])


def _spearman(x, y) -> float:
    return float(stats.spearmanr(x, y)[0])


def bench_policy_correlation(bench, success, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """bench, success: (V,) per variant. Returns pearson, spearman, their intervals and n.

    Bootstrap resamples variants with replacement; resamples where either side is constant
    (a correlation is undefined there) are skipped and counted in `boot_skipped`.
    """
    x, y = np.asarray(bench, float), np.asarray(success, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"bench and success must be 1-D and the same length, got {x.shape} and {y.shape}")
    if len(x) < 3:
        raise ValueError(f"need at least 3 variants for a correlation, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("bench and success must be finite")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("bench or success is constant across variants: no correlation to measure")
    rng = np.random.default_rng(seed)
    boots, skipped = {"pearson": [], "spearman": []}, 0
    for _ in range(n_boot):
        i = rng.integers(len(x), size=len(x))
        if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
            skipped += 1
            continue
        boots["pearson"].append(_pearson(x[i], y[i]))
        boots["spearman"].append(_spearman(x[i], y[i]))
    a = (1 - level) / 2
    out = dict(n=int(len(x)), boot_skipped=skipped, level=level)
    for name, f in (("pearson", _pearson), ("spearman", _spearman)):
        b = np.asarray(boots[name])
        out[name] = f(x, y)
        out[f"{name}_ci"] = (float(np.nanquantile(b, a)), float(np.nanquantile(b, 1 - a))) if len(b) else (np.nan, np.nan)
    return out


def successes_distinguishable(successes, episodes) -> bool:
    """False when every variant's 95% Wilson interval of success (successes (V,) of episodes (V,))
    shares a common point with every other's: the success ranking is then noise, and so is any
    correlation with it."""
    from dreamgen.report import wilson_interval

    ci = np.array([wilson_interval(int(k), int(n)) for k, n in zip(successes, episodes)])
    return bool(ci[:, 0].max() > ci[:, 1].min())


def correlation_report(bench, success, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                       successes=None, episodes=None) -> dict:
    """bench_policy_correlation, or NaNs and the reason when the correlation is undefined.

    Undefined (never faked): fewer than 3 variants, a non-finite value, or bench or success
    constant across variants (e.g. every policy failed every episode). Returns the same keys
    as bench_policy_correlation plus `defined` (bool) and `reason` (str, empty when defined).
    successes, episodes: (V,) counts behind `success`; when given, `distinguishable` says whether
    the successes differ beyond their intervals (see successes_distinguishable), and a defined
    correlation over indistinguishable successes carries that as its `reason`.
    """
    x, y = np.asarray(bench, float), np.asarray(success, float)
    extra = {}
    if successes is not None and episodes is not None:
        extra["distinguishable"] = successes_distinguishable(successes, episodes)
    try:
        out = bench_policy_correlation(x, y, n_boot, seed, level) | dict(defined=True, reason="") | extra
        if extra and not extra["distinguishable"]:
            out["reason"] = (f"policy successes are indistinguishable ({int(np.sum(successes))} successes in "
                             f"{int(np.sum(episodes))} episodes; every variant's 95% interval overlaps every other's), "
                             "so the correlation is not evidence either way")
        return out
    except ValueError as err:
        if x.shape != y.shape or x.ndim != 1:
            raise
        nan = float("nan")
        return dict(n=int(len(x)), boot_skipped=0, level=level, pearson=nan, spearman=nan,
                    pearson_ci=(nan, nan), spearman_ci=(nan, nan), defined=False, reason=str(err)) | extra
