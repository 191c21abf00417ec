"""The patient service of the clinical record platform."""
