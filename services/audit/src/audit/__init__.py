"""The audit service of the clinical record platform."""
