"""The shared fixtures (real servers, isolated names, tokens) come from the clinical_testing plugin,
which pytest loads through its entry point."""

# Imported at start-up rather than first by hypothesis's own plugin at the session's end: there,
# CPython 3.11.7's compiler fails on the assertion-rewritten module ("AST constructor recursion
# depth mismatch", fixed in 3.11.8) and a green run exits with an error.
import hypothesis  # noqa: F401
