"""SMART on FHIR v2 scopes: which resource types and interactions an access token grants.

A scope reads ``<context>/<resource>.<interactions>``: the context is ``patient`` (the launch
patient's records only), ``user`` (what the user may see) or ``system`` (a backend service, no
user); the resource a FHIR type or ``*``; the interactions a subset of ``cruds`` in that order
(create, read, update, delete, search). SMART v1 suffixes are read as their v2 equivalents
(``read`` = ``rs``, ``write`` = ``cud``, ``*`` = ``cruds``). Scopes with a query (granular
scopes such as ``?category=``) are not granted here: this platform does not filter by them yet,
so granting them whole would grant more than the scope says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Context(StrEnum):
    PATIENT = "patient"
    USER = "user"
    SYSTEM = "system"


class Interaction(StrEnum):
    CREATE = "c"
    READ = "r"
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


_V2 = re.compile(r"^(patient|user|system)/([A-Z][A-Za-z]{0,63}|\*)\.(c?r?u?d?s?)$")
_V1 = re.compile(r"^(patient|user|system)/([A-Z][A-Za-z]{0,63}|\*)\.(read|write|\*)$")
_V1_MEANING = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class SmartScope:
    """One granted SMART scope."""

    context: Context
    resource: str  # a FHIR resource type, or "*"
    interactions: frozenset[Interaction]

    @property
    def text(self) -> str:
        """The scope in SMART v2 notation, e.g. ``patient/Observation.rs``."""
        letters = "".join(i.value for i in Interaction if i in self.interactions)
        return f"{self.context.value}/{self.resource}.{letters}"

    def grants(self, context: Context, resource: str, interaction: Interaction) -> bool:
        """True when this scope covers ``interaction`` on ``resource`` in ``context``."""
        return (
            self.context is context
            and self.resource in ("*", resource)
            and interaction in self.interactions
        )


def parse_scope(text: str) -> SmartScope | None:
    """The SMART scope ``text`` names, or None (OpenID scopes, launch scopes, malformed ones)."""
    if match := _V2.match(text):
        context, resource, letters = match.groups()
    elif match := _V1.match(text):
        context, resource, suffix = match.groups()
        letters = _V1_MEANING[suffix]
    else:
        return None
    if not letters:
        return None
    return SmartScope(Context(context), resource, frozenset(Interaction(c) for c in letters))


def parse_scopes(scope_claim: str | Iterable[str]) -> frozenset[SmartScope]:
    """Every SMART scope of a token's ``scope`` claim (space-separated, or a list)."""
    words = scope_claim.split() if isinstance(scope_claim, str) else scope_claim
    return frozenset(s for s in (parse_scope(w) for w in words) if s is not None)


def granted(
    scopes: Iterable[SmartScope],
    contexts: Iterable[Context],
    resource: str,
    interaction: Interaction,
) -> bool:
    """True when any scope grants ``interaction`` on ``resource`` in one of ``contexts``."""
    allowed = tuple(contexts)
    return any(s.grants(c, resource, interaction) for s in scopes for c in allowed)
