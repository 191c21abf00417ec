"""Fixtures shared by every test in the repository (real servers, isolated names, tokens)."""

pytest_plugins = [
    "clinical_platform.testing.plugin",
    "clinical_platform.testing.eventlog",
    "clinical_platform.testing.tokens",
]
