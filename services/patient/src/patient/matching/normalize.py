"""Text normalisation for comparison: case, whitespace, diacritics, punctuation."""

from __future__ import annotations

import re
import unicodedata

_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")


def fold(text: str) -> str:
    """Lower case ASCII words separated by single spaces: ``"  Zoë  O'Brien-Smith "`` ->
    ``"zoe o brien smith"``. NFKD splits accented letters from their marks, which are dropped.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_ALPHANUMERIC.sub(" ", stripped.casefold()).strip()


def compact(text: str) -> str:
    """`fold` without spaces: ``"Van der Berg"`` and ``"vanderberg"`` compare equal."""
    return fold(text).replace(" ", "")


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())
