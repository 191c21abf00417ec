"""EM calibration recovers m and u from unlabelled pairs."""

import random

import pytest

from patient.matching.calibration import estimate, level_frequencies
from patient.matching.model import FieldModel, LevelProbabilities, MatchModel

pytestmark = pytest.mark.unit

_TRUE = {"a": (0.9, 0.05), "b": (0.85, 0.1), "c": (0.95, 0.02)}


def _pairs(count: int, match_share: float) -> list[dict[str, str | None]]:
    rng = random.Random(3)  # noqa: S311 - reproducible test data
    pairs: list[dict[str, str | None]] = []
    for _ in range(count):
        is_match = rng.random() < match_share
        pairs.append(
            {
                field: "exact" if rng.random() < (m if is_match else u) else "disagree"
                for field, (m, u) in _TRUE.items()
            }
        )
    return pairs


def _start() -> MatchModel:
    return {
        field: FieldModel(
            {"exact": LevelProbabilities(0.7, 0.2), "disagree": LevelProbabilities(0.3, 0.8)}
        )
        for field in _TRUE
    }


def test_em_recovers_m_u_and_the_match_share() -> None:
    result = estimate(_pairs(20_000, 0.3), _start(), match_share=0.5)
    assert result.match_share == pytest.approx(0.3, abs=0.02)
    for field, (m, u) in _TRUE.items():
        assert result.model[field].levels["exact"].m == pytest.approx(m, abs=0.03)
        assert result.model[field].levels["exact"].u == pytest.approx(u, abs=0.03)


def test_with_fixed_u_only_m_moves() -> None:
    result = estimate(_pairs(5_000, 0.3), _start(), match_share=0.5, fixed_u=True)
    assert result.model["a"].levels["exact"].u == 0.2


def test_level_frequencies_measure_u_on_random_pairs() -> None:
    model = level_frequencies(_pairs(20_000, 0.0), _start())
    assert model["c"].levels["exact"].u == pytest.approx(0.02, abs=0.005)
    assert model["c"].levels["exact"].m == 0.7
