"""The gateway service of the clinical record platform."""
