"""The public gRPC API that fronts the internal services."""
