"""Statistics of a forced-choice reader study: Wilson intervals, one-sided exact binomial tests against
chance, the chance rate of a reader majority, and Fleiss' kappa (scipy / statsmodels do the arithmetic)."""
from __future__ import annotations

import math

import numpy as np


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion (statsmodels ``proportion_confint(method="wilson")``)."""
    from statsmodels.stats.proportion import proportion_confint
    if n == 0:
        return math.nan, math.nan
    lo, hi = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def binomial_p(successes: int, n: int, p0: float) -> float:
    """One-sided exact binomial p-value of H1: rate > ``p0`` (scipy ``binomtest(alternative="greater")``)."""
    from scipy.stats import binomtest
    if n == 0:
        return math.nan
    return float(binomtest(successes, n, p0, alternative="greater").pvalue)


def majority_needed(readers: int) -> int:
    """Votes that make a strict majority of ``readers`` (2 of 3)."""
    return readers // 2 + 1


def majority_chance(readers: int, k: int) -> float:
    """Chance that a strict majority of ``readers`` picks one given method when each picks one of ``k``
    uniformly at random: P(Binomial(readers, 1/k) >= majority). 3 readers, 3 methods: 7/27."""
    from scipy.stats import binom
    return float(binom.sf(majority_needed(readers) - 1, readers, 1.0 / k))


def fleiss_kappa(choices: np.ndarray, k: int) -> float:
    """Fleiss' kappa of a (cases, readers) array of method indices 0..k-1 (statsmodels); NaN when it is
    undefined (fewer than 2 readers or cases, or one method chosen throughout)."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa as _fleiss
    choices = np.asarray(choices)
    if choices.ndim != 2 or choices.shape[0] < 2 or choices.shape[1] < 2:
        return math.nan
    table, _ = aggregate_raters(choices, n_cat=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(_fleiss(table, method="fleiss"))
    return value if math.isfinite(value) else math.nan


def proportion(successes: int, n: int, p0: float) -> dict:
    """``{"k", "n", "rate", "ci95", "p0", "p_value"}`` of one row of the table."""
    lo, hi = wilson(successes, n)
    return {"k": int(successes), "n": int(n), "rate": successes / n if n else math.nan, "ci95": [lo, hi],
            "p0": p0, "p_value": binomial_p(successes, n, p0)}
