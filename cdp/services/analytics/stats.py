"""Small statistics the analytics need, in plain ``math`` (no SciPy).

``two_proportion_z`` is the pooled two-proportion z-test found in every
introductory textbook: with ``x1`` successes of ``n1`` and ``x2`` of ``n2``,

    p = (x1 + x2) / (n1 + n2)                       pooled proportion
    z = (x2/n2 - x1/n1) / sqrt(p (1 - p) (1/n1 + 1/n2))
    p-value (two-sided) = erfc(|z| / sqrt(2))       = 2 (1 - Phi(|z|))

It is the same test as Pearson's chi-square on the 2x2 table (chi2 = z²).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ZTest:
    """A two-proportion z-test: the statistic and its two-sided p-value."""

    z: float
    p_value: float


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> ZTest | None:
    """Pooled z-test of ``x2/n2`` against ``x1/n1``; ``None`` if a group is empty.

    ``z`` is positive when the second proportion is higher. When both groups
    are all successes or all failures there is no variance: ``z = 0``,
    ``p = 1`` (no evidence of a difference).
    """
    if n1 <= 0 or n2 <= 0:
        return None
    if not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        raise ValueError(f"successes must lie in 0..n: {x1}/{n1}, {x2}/{n2}")
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        return ZTest(0.0, 1.0)
    z = (x2 / n2 - x1 / n1) / math.sqrt(variance)
    return ZTest(z, math.erfc(abs(z) / math.sqrt(2)))
