"""The platform kernel every clinical service shares: settings, gRPC server, telemetry, clients."""
