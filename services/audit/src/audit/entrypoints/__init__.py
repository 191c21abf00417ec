"""The public gRPC API of the audit service."""
