"""Identity matching: normalisation, blocking, field comparators, Fellegi-Sunter scoring.

Pure functions and values only (no I/O), so the same code scores a registration, answers
FindMatches and runs the offline evaluation. docs/matching.md explains the model.
"""
