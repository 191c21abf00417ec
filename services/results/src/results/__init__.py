"""The results service of the clinical record platform."""
