"""Care relationships read from the event log, and break-glass reads without one."""
