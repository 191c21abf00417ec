"""The audit console: server-rendered pages for auditors at /console/ (docs/console.md)."""
