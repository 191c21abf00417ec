"""Test harness: real Kafka, MongoDB-protocol and Vault-API servers for integration tests.

A pytest plugin (entry point ``clinical``), loaded wherever this package is installed.
"""
