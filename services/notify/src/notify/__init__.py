"""The notify service of the clinical record platform."""
