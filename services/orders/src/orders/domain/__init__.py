"""The Order aggregate and its rules: placing, signing and cancelling orders. No I/O here."""
