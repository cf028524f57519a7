"""The two-proportion z-test against textbook examples."""

from __future__ import annotations

import math

import pytest

from cdp.services.analytics.stats import two_proportion_z


def test_hives_example_from_illowsky_and_dean() -> None:
    """Collaborative/Introductory Statistics (Illowsky & Dean), two population proportions:
    20 of 200 patients on medication A and 12 of 200 on B still had hives; pooled
    proportion 0.08, two-sided p-value 0.1404 (not significant at 1%)."""
    result = two_proportion_z(20, 200, 12, 200)
    assert result is not None
    assert result.z == pytest.approx(-0.04 / math.sqrt(0.08 * 0.92 * (2 / 200)))
    assert round(result.z, 2) == -1.47
    assert round(result.p_value, 4) == 0.1404


def test_large_difference_is_significant() -> None:
    # 100/400 vs 41/407: z = 5.58 in the worked solution (pooled 0.175).
    result = two_proportion_z(41, 407, 100, 400)
    assert result is not None
    assert round(result.z, 2) == 5.58
    assert result.p_value < 1e-7


def test_symmetry_and_degenerate_cases() -> None:
    a, b = two_proportion_z(30, 100, 45, 100), two_proportion_z(45, 100, 30, 100)
    assert a is not None and b is not None
    assert a.z == pytest.approx(-b.z) and a.p_value == pytest.approx(b.p_value)
    assert two_proportion_z(0, 0, 1, 10) is None
    same = two_proportion_z(0, 50, 0, 70)
    assert same is not None and (same.z, same.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"0\.\.n"):
        two_proportion_z(11, 10, 1, 10)


def test_chi_square_equivalence() -> None:
    """z² equals Pearson's chi-square statistic on the 2x2 table."""
    x1, n1, x2, n2 = 33, 120, 52, 130
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    total = n1 + n2
    cols = [x1 + x2, total - x1 - x2]
    chi2 = sum(
        (table[i][j] - [n1, n2][i] * cols[j] / total) ** 2 / ([n1, n2][i] * cols[j] / total)
        for i in range(2)
        for j in range(2)
    )
    result = two_proportion_z(x1, n1, x2, n2)
    assert result is not None
    assert result.z**2 == pytest.approx(chi2)
