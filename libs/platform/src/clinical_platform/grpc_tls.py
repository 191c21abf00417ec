"""TLS for the platform's gRPC: server credentials (mutual TLS) and the client side's channels.

One private CA signs every service's certificate (`python3 -m localinfra certificate <service>`
issues them locally; a deployment's PKI in a cluster). A server configured with the CA asks
every caller for a certificate that CA signed and refuses the handshake otherwise; a client
verifies the server against the same CA and presents its own certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from clinical_platform.settings import BaseServiceSettings, SettingsError


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: this service's certificate and key, and the CA of the platform's services."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: BaseServiceSettings) -> TlsFiles | None:
        """The configured files (the settings check they come as a pair); None for plaintext."""
        cert, key = settings.grpc_tls_cert_file, settings.grpc_tls_key_file
        if cert is None or key is None:
            return None
        return cls(cert, key, settings.grpc_tls_ca_file)

    def _read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as unreadable:
            raise SettingsError(f"cannot read {path}: {unreadable.strerror}") from None

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS with this certificate; with a CA, mutual TLS: callers must present one it signed."""
        ca = self._read(self.ca_file) if self.ca_file is not None else None
        return grpc.ssl_server_credentials(
            [(self._read(self.key_file), self._read(self.cert_file))],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Verify servers against the CA (the system's roots without one); present our cert."""
        return grpc.ssl_channel_credentials(
            root_certificates=self._read(self.ca_file) if self.ca_file is not None else None,
            private_key=self._read(self.key_file),
            certificate_chain=self._read(self.cert_file),
        )


def open_channel(address: str, tls: TlsFiles | None) -> grpc.aio.Channel:
    """A channel to another service: mutual TLS when ``tls`` is given, plaintext otherwise."""
    if tls is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, tls.channel_credentials())
