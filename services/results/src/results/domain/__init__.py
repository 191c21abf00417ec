"""The Result aggregate and its rules: posting and amending results against orders. No I/O here."""
