"""The orders service of the clinical record platform."""
