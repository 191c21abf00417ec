"""The local CA and the certificates it signs: Kafka's broker, and one per service for gRPC.

The CA (`ca.crt`, `ca.key`) lives with Kafka's access files in `<data>/kafka/access/`; service
certificates in its `services/` folder, each usable as server and as client (mutual TLS):
``python3 -m localinfra certificate orders`` prints the service's GRPC_TLS variables.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .builds import BuildError
from .config import HOST, write_private
from .prereqs import require

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class ServiceCertificate:
    """A service's certificate and key (PEM), and the CA that signed it and its peers."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def env(self, service: str) -> dict[str, str]:
        """The service's settings for gRPC with mutual TLS (clinical_platform.grpc_tls)."""
        prefix = f"{service.upper()}_GRPC_TLS"
        return {f"{prefix}_CERT_FILE": str(self.cert_file),
                f"{prefix}_KEY_FILE": str(self.key_file),
                f"{prefix}_CA_FILE": str(self.ca_file)}  # fmt: skip


def make_ca(folder: Path) -> None:
    """A new CA in ``folder``: ca.key (kept to its owner) and ca.crt, for ten years."""
    _openssl([["req", "-x509", *_EC_KEY, "-keyout", folder / "ca.key", "-out", folder / "ca.crt",
               "-days", "3650", "-subj", "/CN=clinical-platform local CA"]])  # fmt: skip
    (folder / "ca.key").chmod(0o600)


def issue(ca_folder: Path, *, common_name: str, extensions: str, out: Path) -> tuple[str, str]:
    """A certificate for ``common_name`` signed by the CA of ``ca_folder``: (cert, key) PEM.

    ``extensions`` are openssl's x509 extension lines (subjectAltName, extendedKeyUsage).
    """
    key, csr, ext, cert = (out / f"{common_name}.{suffix}" for suffix in ("key.tmp", "csr", "ext",
                                                                         "crt.tmp"))  # fmt: skip
    ext.write_text(extensions)
    try:
        _openssl([
            ["req", "-new", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={common_name}"],
            ["x509", "-req", "-in", csr, "-CA", ca_folder / "ca.crt", "-CAkey",
             ca_folder / "ca.key", "-CAcreateserial", "-out", cert, "-days", "825",
             "-extfile", ext],
        ])  # fmt: skip
        return cert.read_text(), key.read_text()
    finally:
        for leftover in (key, csr, ext, cert):
            leftover.unlink(missing_ok=True)


def service_certificate(ca_folder: Path, service: str) -> ServiceCertificate:
    """The service's certificate from the local CA, issued on first use.

    It names ``clinical-<service>``, localhost and the loopback address, for serving and for
    calling other services (serverAuth and clientAuth).
    """
    folder = ca_folder / "services"
    folder.mkdir(mode=0o700, exist_ok=True)
    found = ServiceCertificate(folder / f"{service}.crt", folder / f"{service}.key",
                               ca_folder / "ca.crt")  # fmt: skip
    if not found.key_file.exists():
        extensions = (
            f"subjectAltName=IP:{HOST},DNS:localhost,DNS:clinical-{service}\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
        )
        cert, key = issue(ca_folder, common_name=f"clinical-{service}", extensions=extensions,
                          out=folder)  # fmt: skip
        write_private(found.key_file, key)
        found.cert_file.write_text(cert)
    return found


def _openssl(steps: list[list[str | Path]]) -> None:
    openssl = require("openssl")
    for step in steps:
        completed = subprocess.run(
            [openssl, *map(str, step)], capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise BuildError(
                f"openssl failed making a local certificate: {completed.stderr[-500:]}"
            )
