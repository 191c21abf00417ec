"""The patient domain: records, their demographics, identity decisions and links. No I/O."""
