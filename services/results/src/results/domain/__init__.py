"""The results domain: the LabResult aggregate, observations and their interpretation; no I/O."""
