"""The seen-set of single-use token ids: bounded, and each id kept until its token expires."""

import pytest

from clinical_platform.seen_tokens import SeenTokenIds

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0


def test_an_id_is_refused_until_its_token_expires_then_forgotten() -> None:
    seen = SeenTokenIds()

    assert seen.first_use("a", until=NOW + 120, now=NOW)
    assert not seen.first_use("a", until=NOW + 120, now=NOW + 119)
    assert seen.first_use("b", until=NOW + 300, now=NOW + 121)
    assert len(seen) == 1  # "a" expired: its token is refused as expired from now on


def test_a_full_set_forgets_the_ids_closest_to_expiry_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = SeenTokenIds(max_entries=2)
    seen.first_use("late", until=NOW + 900, now=NOW)
    seen.first_use("soon", until=NOW + 60, now=NOW)

    assert seen.first_use("new", until=NOW + 120, now=NOW)

    assert len(seen) == 2
    assert seen.forgotten_early == 1
    assert not seen.first_use("late", until=NOW + 900, now=NOW)
    assert seen.first_use("soon", until=NOW + 60, now=NOW)  # forgotten: a replay gets through
    assert "forgotten before they expire" in caplog.text


def test_a_set_holds_at_least_one_id() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SeenTokenIds(max_entries=0)
