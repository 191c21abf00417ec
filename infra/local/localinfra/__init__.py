"""Real Kafka, MongoDB-protocol (FerretDB) and Vault-API (OpenBao) servers on 127.0.0.1, no Docker.

Run it as ``python3 -m localinfra`` with ``infra/local`` on ``PYTHONPATH`` (the Makefile does).
It uses only the standard library, so it works before any virtualenv exists.
"""
