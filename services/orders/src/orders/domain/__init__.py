"""The orders domain: the Order aggregate and what it refuses; no I/O."""
