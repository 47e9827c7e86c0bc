"""Statistics of a forced-choice reader study: Wilson intervals, one-sided exact binomial tests against
chance, the chance rate of a reader majority, and Fleiss' kappa (scipy for the distributions)."""
from __future__ import annotations

import math

import numpy as np


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927; equal to statsmodels'
    ``proportion_confint(method="wilson")``, checked in the tests)."""
    from scipy.stats import norm
    if n == 0:
        return math.nan, math.nan
    z = float(norm.isf(alpha / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


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
    """Fleiss' kappa (Fleiss 1971) of a (cases, readers) array of method indices 0..k-1; NaN when it is
    undefined (fewer than 2 readers or cases, or one method chosen throughout)."""
    choices = np.asarray(choices)
    if choices.ndim != 2 or choices.shape[0] < 2 or choices.shape[1] < 2:
        return math.nan
    n = choices.shape[1]
    counts = np.stack([(choices == j).sum(1) for j in range(k)], axis=1).astype(float)  # (cases, k)
    agreement = ((counts * (counts - 1)).sum(1) / (n * (n - 1))).mean()
    shares = counts.sum(0) / counts.sum()
    chance = float((shares ** 2).sum())
    if chance >= 1.0:
        return math.nan
    return float((agreement - chance) / (1 - chance))


def proportion(successes: int, n: int, p0: float) -> dict:
    """``{"k", "n", "rate", "ci95", "p0", "p_value"}`` of one row of the table."""
    lo, hi = wilson(successes, n)
    return {"k": int(successes), "n": int(n), "rate": successes / n if n else math.nan, "ci95": [lo, hi],
            "p0": p0, "p_value": binomial_p(successes, n, p0)}
