"""The audit trail's rules: queries, windows, paging. No I/O here."""
