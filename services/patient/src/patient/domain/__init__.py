"""The Patient aggregate and its rules: registration, demographics, linking records. No I/O here."""
