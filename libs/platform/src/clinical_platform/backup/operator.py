"""The servers a backup or restore talks to, from the operator's environment.

The same variables as every client of the platform (`make -s infra-env` prints them locally):
KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_CAFILE, VAULT_ADDR
and VAULT_TOKEN. A service's own principal cannot read every topic, so this is the operator's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import hvac

from clinical_platform.clients.kafka import KafkaConnection, KafkaSecurity
from clinical_platform.settings import SettingsError


@dataclass(frozen=True)
class OperatorServers:
    kafka: KafkaConnection
    vault: hvac.Client


def operator_servers(environ: Mapping[str, str] = os.environ) -> OperatorServers:
    """`SettingsError` naming every missing variable (never a value)."""
    missing = [
        name
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "VAULT_ADDR", "VAULT_TOKEN")
        if not environ.get(name)
    ]
    if missing:
        raise SettingsError("; ".join(f"{name}: required" for name in missing))
    kafka = KafkaConnection(environ["KAFKA_BOOTSTRAP_SERVERS"], KafkaSecurity.from_env(environ))
    kafka.client_options()  # fail now, naming the variables, not at the first call
    vault = hvac.Client(url=environ["VAULT_ADDR"], token=environ["VAULT_TOKEN"], timeout=30)
    return OperatorServers(kafka, vault)
