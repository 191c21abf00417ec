"""Estimate m and u by expectation-maximisation over unlabelled record pairs.

The classic Fellegi-Sunter EM (Winkler 1988, Jaro 1989): with fields conditionally independent
given match status, alternate between each pair's match probability under the current m, u and
prior (E step) and the m, u and prior those probabilities imply (M step). Missing levels are
left out of both steps. Patterns are counted first, so the cost is per distinct pattern.

Blocked pairs are mostly true matches, which leaves too few non-matches for EM to learn u from.
So u is measured on random pairs (`level_frequencies`: random pairs are almost all non-matches)
and held fixed, and EM estimates m and the match share, as Splink and most MPI vendors do.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from patient.matching.model import FieldModel, LevelProbabilities, MatchModel

Pattern = tuple[tuple[str, str], ...]
"""A pair's present fields and their levels, sorted by field."""

_FLOOR = 1e-6


@dataclass(frozen=True)
class Estimate:
    model: MatchModel
    match_share: float
    iterations: int


def estimate(
    pairs: Iterable[Mapping[str, str | None]],
    start: MatchModel,
    *,
    match_share: float = 0.1,
    iterations: int = 200,
    tolerance: float = 1e-7,
    fixed_u: bool = False,
) -> Estimate:
    """EM estimates of every field's level probabilities, starting from ``start``.

    With ``fixed_u`` only m and the match share move; u stays as ``start`` has it.
    """
    patterns = Counter(
        tuple(sorted((f, level) for f, level in pair.items() if level is not None))
        for pair in pairs
    )
    model = start
    share = match_share
    for round_number in range(1, iterations + 1):
        posteriors = {p: _posterior(p, model, share) for p in patterns}
        total = sum(patterns.values())
        new_share = sum(posteriors[p] * n for p, n in patterns.items()) / total
        model = _maximise(patterns, posteriors, start, fixed_u=fixed_u)
        converged = abs(new_share - share) < tolerance
        share = new_share
        if converged:
            return Estimate(model, share, round_number)
    return Estimate(model, share, iterations)


def _posterior(pattern: Pattern, model: MatchModel, share: float) -> float:
    log_m = math.log(share) + sum(math.log(model[f].levels[lv].m) for f, lv in pattern)
    log_u = math.log(1 - share) + sum(math.log(model[f].levels[lv].u) for f, lv in pattern)
    return 1 / (1 + math.exp(min(700.0, log_u - log_m)))


def _maximise(
    patterns: Counter[Pattern],
    posteriors: Mapping[Pattern, float],
    start: MatchModel,
    *,
    fixed_u: bool,
) -> MatchModel:
    m_counts: dict[str, defaultdict[str, float]] = {f: defaultdict(float) for f in start}
    u_counts: dict[str, defaultdict[str, float]] = {f: defaultdict(float) for f in start}
    for pattern, count in patterns.items():
        g = posteriors[pattern]
        for field, level in pattern:
            m_counts[field][level] += g * count
            u_counts[field][level] += (1 - g) * count
    return {
        field: FieldModel(
            {
                level: LevelProbabilities(
                    _share(m_counts[field], level, previous.m),
                    previous.u if fixed_u else _share(u_counts[field], level, previous.u),
                )
                for level, previous in model.levels.items()
            }
        )
        for field, model in start.items()
    }


def _share(counts: Mapping[str, float], level: str, fallback: float) -> float:
    total = sum(counts.values())
    if total <= 0:
        return fallback  # the field never appeared: keep the prior value
    return max(counts[level] / total, _FLOOR)


def level_frequencies(pairs: Iterable[Mapping[str, str | None]], start: MatchModel) -> MatchModel:
    """``start`` with each u replaced by the level's frequency among ``pairs`` (random pairs).

    A level never seen keeps a floor of half a pair, so its weight stays finite.
    """
    counts: dict[str, defaultdict[str, float]] = {f: defaultdict(float) for f in start}
    for pair in pairs:
        for field, level in pair.items():
            if level is not None:
                counts[field][level] += 1
    updated = {}
    for field, model in start.items():
        total = sum(counts[field].values())
        levels = {}
        for level, previous in model.levels.items():
            u = max(counts[field][level], 0.5) / (total + 0.5) if total else previous.u
            levels[level] = LevelProbabilities(previous.m, u)
        updated[field] = FieldModel(levels)
    return updated
