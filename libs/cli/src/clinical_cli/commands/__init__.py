"""The command groups: one module each, every command one RPC (subscribe: two)."""
