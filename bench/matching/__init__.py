"""The parts of ``python -m bench.matching_eval``: FEBRL1, registering it, calibrating on it."""
