"""The agreement metrics, checked against scikit-learn, scipy and numpy.

scikit-learn and scipy are dev-only dependencies: the package computes every figure
from the (label, judge) table in plain Python, and these tests hold it to the
reference implementations on random data and on the edge cases.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from batchgrader.report import agreement as m


def table(judge: Sequence[int], label: Sequence[int]) -> dict[tuple[m.Exact, m.Exact], int]:
    """The (label, judge) -> rows table of two equal-length lists."""
    return dict(Counter[tuple[m.Exact, m.Exact]](zip(label, judge, strict=True)))


def sk_kappa(label: Sequence[object], judge: Sequence[object], **kw: object) -> float:
    """scikit-learn's kappa with its undefined-metric warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(label, judge, **kw))


def sp_rho(judge: Sequence[float], label: Sequence[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(judge, label).statistic)


def none_is_nan(value: float | None) -> float:
    return float("nan") if value is None else value


scale_pairs = st.integers(1, 5).flatmap(
    lambda lo: st.integers(lo + 1, lo + 6).flatmap(
        lambda hi: st.lists(
            st.tuples(st.integers(lo, hi), st.integers(lo, hi)), min_size=1, max_size=300
        ).map(lambda pairs: (lo, hi, pairs))
    )
)


class TestAgainstReferences:
    @given(scale_pairs)
    @settings(max_examples=200, deadline=None)
    def test_every_metric_matches_the_references_on_random_data(
        self, case: tuple[int, int, list[tuple[int, int]]]
    ) -> None:
        """On random pairs, every metric equals scikit-learn's, scipy's or numpy's value."""
        lo, hi, pairs = case
        judge = [j for j, _ in pairs]
        label = [y for _, y in pairs]
        t = table(judge, label)
        scale = list(range(lo, hi + 1))
        assert none_is_nan(m.cohen_kappa(t)) == pytest.approx(
            sk_kappa(label, judge, labels=scale), nan_ok=True, abs=1e-12
        )
        assert none_is_nan(m.quadratic_weighted_kappa(t)) == pytest.approx(
            sk_kappa(label, judge, labels=scale, weights="quadratic"), nan_ok=True, abs=1e-12
        )
        assert none_is_nan(m.spearman(t)) == pytest.approx(
            sp_rho(judge, label), nan_ok=True, abs=1e-12
        )
        x, y = np.array(judge, dtype=float), np.array(label, dtype=float)
        assert m.mean_absolute_error(t) == pytest.approx(np.mean(np.abs(x - y)), abs=1e-12)
        assert m.mean_difference(t) == pytest.approx(np.mean(x - y), abs=1e-12)
        assert m.exact_agreement(t) == pytest.approx(np.mean(x == y), abs=1e-12)
        assert m.within_one(t) == pytest.approx(np.mean(np.abs(x - y) <= 1), abs=1e-12)
        expected = confusion_matrix(label, judge, labels=scale).tolist()
        assert m.confusion(t, scale) == expected

    def test_weighted_kappa_weighs_by_value_distance_not_rank(self) -> None:
        """Values 1, 2 and 5 are 1 and 3 apart, as scikit-learn has it given the full scale
        (its default would space the three values seen evenly)."""
        judge = [1, 2, 5, 5, 2, 1, 5, 2]
        label = [2, 2, 5, 1, 1, 1, 5, 5]
        full = sk_kappa(label, judge, labels=[1, 2, 3, 4, 5], weights="quadratic")
        seen = sk_kappa(label, judge, weights="quadratic")
        assert m.quadratic_weighted_kappa(table(judge, label)) == pytest.approx(full)
        assert full != pytest.approx(seen)

    def test_fractional_values_use_their_exact_distances(self) -> None:
        """A number field's weighted kappa is 2 cov / (var x + var y + (mean gap)^2)."""
        judge = [0.5, 1.5, 2.0, 2.5, 1.0, 0.5]
        label = [0.5, 1.0, 2.5, 2.5, 1.5, 1.0]
        t = {
            (m.exact(y), m.exact(x)): c
            for (y, x), c in Counter(zip(label, judge, strict=True)).items()
        }
        x, y = np.array(judge), np.array(label)
        cov = np.mean((x - x.mean()) * (y - y.mean()))
        reference = 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
        assert m.quadratic_weighted_kappa(t) == pytest.approx(reference, abs=1e-12)
        assert m.mean_absolute_error(t) == pytest.approx(np.mean(np.abs(x - y)))
        assert m.spearman(t) == pytest.approx(sp_rho(judge, label))

    @given(
        st.lists(
            st.tuples(st.sampled_from("abcd"), st.sampled_from(["a", "b", "c", "dd", "e"])),
            min_size=1,
            max_size=200,
        )
    )
    @settings(max_examples=100, deadline=None)
    def test_categorical_kappa_matches_scikit_learn(self, pairs: list[tuple[str, str]]) -> None:
        """Categories (strings) get scikit-learn's unweighted kappa and exact agreement."""
        judge = [j for j, _ in pairs]
        label = [y for _, y in pairs]
        t = dict(Counter(zip(label, judge, strict=True)))
        assert none_is_nan(m.cohen_kappa(t)) == pytest.approx(
            sk_kappa(label, judge), nan_ok=True, abs=1e-12
        )
        assert m.exact_agreement(t) == pytest.approx(np.mean(np.array(judge) == np.array(label)))


class TestEdgeCases:
    def test_perfect_agreement_is_one(self) -> None:
        """Identical judge and label over several values: both kappas and rho are 1."""
        values = [1, 2, 3, 4, 5, 3, 2, 4]
        t = table(values, values)
        assert m.cohen_kappa(t) == 1.0
        assert m.quadratic_weighted_kappa(t) == 1.0
        assert m.spearman(t) == pytest.approx(1.0)
        assert m.exact_agreement(t) == 1.0
        assert m.mean_absolute_error(t) == 0.0

    def test_perfect_agreement_on_one_value_is_undefined_as_in_scikit_learn(self) -> None:
        """Every row 3 on both sides: kappa undefined (scikit-learn: nan), rho undefined."""
        t = table([3] * 20, [3] * 20)
        assert np.isnan(sk_kappa([3] * 20, [3] * 20))
        assert np.isnan(sk_kappa([3] * 20, [3] * 20, weights="quadratic"))
        assert m.cohen_kappa(t) is None
        assert m.quadratic_weighted_kappa(t) is None
        assert m.spearman(t) is None
        assert m.exact_agreement(t) == 1.0

    def test_constant_judge_has_no_spearman_but_a_kappa(self) -> None:
        """A judge giving one value: rho undefined (scipy: nan), kappa 0 as in scikit-learn."""
        judge, label = [4] * 10, [1, 2, 3, 4, 5] * 2
        t = table(judge, label)
        assert np.isnan(sp_rho(judge, label))
        assert m.spearman(t) is None
        assert m.cohen_kappa(t) == pytest.approx(sk_kappa(label, judge)) == 0.0
        assert m.quadratic_weighted_kappa(t) == pytest.approx(
            sk_kappa(label, judge, weights="quadratic")
        )

    def test_one_value_each_but_different_is_zero(self) -> None:
        """Judge always 3, label always 4: kappa 0 (defined), as scikit-learn says."""
        t = table([3] * 5, [4] * 5)
        assert m.cohen_kappa(t) == pytest.approx(sk_kappa([4] * 5, [3] * 5)) == 0.0
        assert m.quadratic_weighted_kappa(t) == 0.0

    def test_chance_agreement_is_near_zero(self) -> None:
        """Independent uniform judge and label: kappas and rho within noise of 0."""
        rng = random.Random(7)
        judge = [rng.randint(1, 5) for _ in range(20_000)]
        label = [rng.randint(1, 5) for _ in range(20_000)]
        t = table(judge, label)
        for value in (m.cohen_kappa(t), m.quadratic_weighted_kappa(t), m.spearman(t)):
            assert value is not None and abs(value) < 0.03
        assert m.exact_agreement(t) == pytest.approx(0.2, abs=0.01)
        assert m.cohen_kappa(t) == pytest.approx(sk_kappa(label, judge), abs=1e-12)

    def test_a_label_value_the_judge_never_gave(self) -> None:
        """A label of 1 the judge never gives: its row in the matrix, kappas as scikit-learn."""
        judge = [2, 3, 4, 5, 3, 4, 2, 5]
        label = [1, 3, 4, 5, 1, 4, 2, 4]
        t = table(judge, label)
        assert 1 not in judge
        assert m.cohen_kappa(t) == pytest.approx(sk_kappa(label, judge))
        assert m.quadratic_weighted_kappa(t) == pytest.approx(
            sk_kappa(label, judge, labels=[1, 2, 3, 4, 5], weights="quadratic")
        )
        matrix = m.confusion(t, [1, 2, 3, 4, 5])
        assert matrix == confusion_matrix(label, judge, labels=[1, 2, 3, 4, 5]).tolist()
        assert matrix[0] == [0, 1, 1, 0, 0]  # label 1: the judge said 2 and 3
        assert [row[0] for row in matrix] == [0] * 5  # the judge never said 1

    def test_mean_difference_says_which_way_the_judge_leans(self) -> None:
        """A judge one point above every label: mean difference +1, and -1 when below."""
        label = [1, 2, 3, 4]
        assert m.mean_difference(table([v + 1 for v in label], label)) == 1.0
        assert m.mean_difference(table([v - 1 for v in label], label)) == -1.0

    def test_exact_numbers_keep_fractions_exact(self) -> None:
        """A whole float becomes an int, a fractional one its exact fraction."""
        assert m.exact(4.0) == 4 and isinstance(m.exact(4.0), int)
        assert m.exact(0.1) == Fraction(0.1)


@pytest.mark.parametrize(
    ("kappa", "band"),
    [
        (-0.1, "poor"),
        (0.0, "slight"),
        (0.2, "slight"),
        (0.21, "fair"),
        (0.4, "fair"),
        (0.5, "moderate"),
        (0.61, "substantial"),
        (0.8, "substantial"),
        (0.81, "almost perfect"),
        (1.0, "almost perfect"),
    ],
)
def test_kappa_bands_follow_landis_and_koch(kappa: float, band: str) -> None:
    """Kappa bands are Landis & Koch's: <0 poor, to .20 slight, .40 fair, .60 moderate,
    .80 substantial, then almost perfect."""
    assert m.kappa_band(kappa) == band
