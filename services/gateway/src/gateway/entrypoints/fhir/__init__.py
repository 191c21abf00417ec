"""The gateway's FHIR R4 (4.0.1) API under ``/fhir/r4``: resources built and checked with the
``fhir.resources`` R4B models (the same as R4's for every type served here), each interaction
done by the services' gRPC commands and queries, every error an OperationOutcome."""
