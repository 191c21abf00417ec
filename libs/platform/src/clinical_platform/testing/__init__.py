"""Test harness: real Kafka, MongoDB-protocol and Vault-API servers for integration tests.

Loaded as a pytest plugin from the repository's root ``conftest.py``.
"""
