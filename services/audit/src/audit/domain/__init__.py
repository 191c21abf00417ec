"""Edge policy for the public API: who may call what, in the clinic's terms. No I/O here."""
