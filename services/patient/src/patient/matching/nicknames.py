"""Common English given-name nicknames and their formal forms, for matching only.

Small on purpose: a nickname that maps to several formal names (e.g. "chris") is left out, since
picking one would turn a weak hint into a false agreement.
"""

from __future__ import annotations

_FORMAL_NAMES: dict[str, tuple[str, ...]] = {
    "alexander": ("alex", "sandy"),
    "andrew": ("andy", "drew"),
    "anthony": ("tony",),
    "benjamin": ("ben", "benny"),
    "catherine": ("cathy", "kate", "katie", "kathy", "cate"),
    "charles": ("charlie", "chuck"),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davy"),
    "deborah": ("debbie", "deb"),
    "edward": ("ed", "eddie", "ted", "teddy", "ned"),
    "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "libby", "bess"),
    "james": ("jim", "jimmy", "jamie"),
    "jennifer": ("jen", "jenny"),
    "john": ("jack", "johnny"),
    "jonathan": ("jon",),
    "joseph": ("joe", "joey"),
    "katherine": ("kath",),
    "margaret": ("maggie", "peggy", "meg", "marge", "madge"),
    "matthew": ("matt",),
    "michael": ("mike", "mick", "mikey"),
    "nicholas": ("nick", "nicky"),
    "patricia": ("patty", "trish", "tricia"),
    "peter": ("pete",),
    "rebecca": ("becky", "becca"),
    "richard": ("rick", "dick", "richie", "rich"),
    "robert": ("bob", "bobby", "rob", "robbie", "bert"),
    "samuel": ("sam", "sammy"),
    "stephen": ("steve", "stevie"),
    "susan": ("sue", "susie"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "tori"),
    "william": ("bill", "billy", "will", "willy", "liam"),
}

NICKNAMES: dict[str, str] = {
    nickname: formal for formal, nicknames in _FORMAL_NAMES.items() for nickname in nicknames
}
"""Nickname -> formal given name, e.g. ``bill -> william``, ``peggy -> margaret``."""


def formal_given_name(name: str) -> str:
    """The formal form of a normalised given name, or the name itself."""
    return NICKNAMES.get(name, name)
