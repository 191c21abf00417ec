"""Kafka's transport security and access: a local CA, the broker's certificate, a SCRAM-SHA-512
user per principal of infra/kafka/acls.toml (plus `admin`), and those ACLs, applied at start.

Everything lives in `<data>/kafka/access/` (key and passwords readable by the owner only). The
broker has no plaintext listener: clients speak SASL_SSL, the controller listener mutual TLS.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .builds import BuildError
from .certificates import issue, make_ca
from .config import HOST, REPO_ROOT, write_private
from .prereqs import require

ACCESS_DEFINITION = REPO_ROOT / "infra" / "kafka" / "acls.toml"
APPLY_PROGRAM = REPO_ROOT / "infra" / "kafka" / "KafkaAccess.java"
ADMIN = "admin"
BROKER_CN = "clinical-kafka-broker"
MECHANISM = "SCRAM-SHA-512"
# Per kind of grant in acls.toml: (resource type, operations).
GRANTS = {
    "produce": ("TOPIC", ("WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS")),
    "consume": ("TOPIC", ("READ", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS")),
    "groups": ("GROUP", ("READ", "DESCRIBE")),
    "transactional_ids": ("TRANSACTIONAL_ID", ("WRITE", "DESCRIBE")),
}


@dataclass(frozen=True)
class KafkaAccess:
    """The files of one broker's security: CA, keystore, passwords."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def keystore(self) -> Path:
        # Kafka's PEM keystore: the broker's private key (PKCS#8) followed by its certificate.
        return self.folder / "broker.pem"

    @property
    def admin_properties(self) -> Path:
        return self.folder / "admin.properties"

    def password(self, principal: str) -> str:
        """The principal's password, made on first use (random, kept in a 0600 file)."""
        path = self.folder / "passwords" / principal
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    def client_env(self, bootstrap: str, principal: str = ADMIN) -> dict[str, str]:
        """The variables a platform client reads to connect as ``principal``."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": principal,
            "KAFKA_SASL_PASSWORD": self.password(principal),
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def client_properties(self, bootstrap: str, principal: str = ADMIN) -> str:
        """A Java client's properties (Kafka's own tools: --command-config)."""
        return "\n".join(
            [
                f"bootstrap.servers={bootstrap}",
                "security.protocol=SASL_SSL",
                f"sasl.mechanism={MECHANISM}",
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
                f'required username="{principal}" password="{self.password(principal)}";',
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.ca_file}",
                "",
            ]
        )


def prepare(state: Path, bootstrap: str) -> KafkaAccess:
    """Make the CA, the broker's certificate and the admin's client properties if missing."""
    access = KafkaAccess(state / "access")
    access.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not access.keystore.exists():
        _make_certificates(access.folder)
    write_private(access.admin_properties, access.client_properties(bootstrap))
    return access


def broker_properties(access: KafkaAccess) -> list[str]:
    """The broker's listener security: SASL_SSL for clients, mutual TLS for the controller."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{access.password(ADMIN)}";'
    )
    return [
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "inter.broker.listener.name=SASL_SSL",
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={access.keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={access.ca_file}",
        "listener.name.controller.ssl.client.auth=required",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{ADMIN};User:CN={BROKER_CN}",
        "allow.everyone.if.no.acl.found=false",
    ]


def bootstrap_scram_argument(access: KafkaAccess) -> list[str]:
    """The storage format option that creates the admin user before the broker first starts."""
    return ["--add-scram", f"{MECHANISM}=[name={ADMIN},password={access.password(ADMIN)}]"]


def apply(access: KafkaAccess, libs: Path) -> None:
    """Upsert every principal's user and make the broker's ACLs exactly the definition's.

    Skipped when neither the definition nor the passwords changed since the last apply."""
    lines = wanted_lines(access)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    applied = access.folder / "applied.sha256"
    if applied.exists() and applied.read_text().strip() == digest:
        return
    argv = [require("java"), "-cp", f"{libs}/*", str(APPLY_PROGRAM), str(access.admin_properties)]
    completed = subprocess.run(
        argv, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise BuildError(f"applying {ACCESS_DEFINITION.name} failed: {completed.stderr[-2000:]}")
    write_private(applied, digest)


def wanted_lines(access: KafkaAccess) -> list[str]:
    """The `user` and `acl` lines of the definition (see infra/kafka/KafkaAccess.java)."""
    definition = tomllib.loads(ACCESS_DEFINITION.read_text())
    lines: list[str] = []
    for principal, grants in sorted(definition.items()):
        lines.append(f"user {principal} {access.password(principal)}")
        for kind, (resource, operations) in GRANTS.items():
            for name in grants.get(kind, []):
                lines += [f"acl {principal} {resource} PREFIXED {name} {op}" for op in operations]
    return lines


def principals() -> list[str]:
    """Every principal the definition names (the admin aside)."""
    return sorted(tomllib.loads(ACCESS_DEFINITION.read_text()))


def _make_certificates(folder: Path) -> None:
    make_ca(folder)
    cert, key = issue(folder, common_name=BROKER_CN, out=folder,
                      extensions=f"subjectAltName=IP:{HOST},DNS:localhost\n")  # fmt: skip
    write_private(folder / "broker.pem", key + cert)
    (folder / "broker.crt").write_text(cert)
