"""TLS for every gRPC server and channel of the project, when certificates are configured (issue 15).

Settings (``TlsSettings`` in services/common/settings/parts.py; paths to PEM files, all optional;
none set = plaintext, fine on loopback):

- ``GRPC_TLS_CERT`` / ``GRPC_TLS_KEY``: this service's certificate chain and private key. A server
  with them serves TLS only; a channel presents them as its client certificate.
- ``GRPC_TLS_CA``: CA bundle. Channels verify the servers they call against it (required for a
  TLS channel); servers verify client certificates against it.
- ``GRPC_TLS_CLIENT_AUTH``: ``none`` (default), ``optional`` (a client certificate, when sent, must
  verify against ``GRPC_TLS_CA``) or ``require`` (mutual TLS: callers without one are refused at the
  handshake).
- ``GRPC_TLS_SERVER_NAME``: the name to check in the server certificate when the target address is
  not it (e.g. calling ``127.0.0.1`` with a certificate for ``cache-gateway``).
- ``GRPC_HEALTH_PORT``: with TLS on, also serve *only* gRPC health checking in plaintext on this port,
  for Kubernetes' native gRPC probes (they cannot speak TLS).

Bearer tokens still decide who may do what (services/common/auth.py); TLS keeps them and the data
secret on the wire and, with client certificates, proves which machine calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import grpc

from services.common.settings import TlsSettings

class TlsConfigError(ValueError):
    """A TLS setting is inconsistent or a file is unreadable; the message names the setting."""


@dataclass(frozen=True)
class TlsConfig:
    cert_chain: bytes | None = None
    private_key: bytes | None = None
    ca: bytes | None = None
    client_auth: str = "none"
    server_name: str = ""
    health_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "TlsConfig | None":
        """``from_settings`` of the ``GRPC_TLS_*`` settings in ``env`` (default ``os.environ``)."""
        return cls.from_settings(TlsSettings.from_env(env))

    @classmethod
    def from_settings(cls, tls: TlsSettings) -> "TlsConfig | None":
        """The configured TLS, or None when no certificate setting is set. Raises TlsConfigError (a
        ValueError) naming the setting when they do not fit together or a file is unreadable."""
        cert, key, ca = tls.grpc_tls_cert, tls.grpc_tls_key, tls.grpc_tls_ca
        if not (cert or key or ca):
            return None
        if bool(cert) != bool(key):
            raise TlsConfigError("set both GRPC_TLS_CERT and GRPC_TLS_KEY (the certificate and its private key), "
                                 "or neither")
        if tls.grpc_tls_client_auth != "none" and not ca:
            raise TlsConfigError("GRPC_TLS_CLIENT_AUTH needs GRPC_TLS_CA (the CA client certificates must chain to)")
        return cls(_read(cert, "GRPC_TLS_CERT"), _read(key, "GRPC_TLS_KEY"), _read(ca, "GRPC_TLS_CA"),
                   tls.grpc_tls_client_auth, tls.grpc_tls_server_name, tls.grpc_health_port)

    @property
    def serves_tls(self) -> bool:
        return self.cert_chain is not None

    def server_credentials(self) -> grpc.ServerCredentials:
        """Raises TlsConfigError when this process has no certificate to serve with."""
        if not self.serves_tls:
            raise TlsConfigError("a TLS server needs GRPC_TLS_CERT and GRPC_TLS_KEY")
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.ca if self.client_auth != "none" else None,
            require_client_auth=self.client_auth == "require",
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        if self.ca is None:
            raise TlsConfigError("a TLS channel needs GRPC_TLS_CA to verify the server it calls")
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.private_key,
                                            certificate_chain=self.cert_chain)

    def channel_options(self) -> tuple[tuple[str, str], ...]:
        return (("grpc.ssl_target_name_override", self.server_name),) if self.server_name else ()


def _read(path: str, setting: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{setting}={path}: cannot read the file ({exc.strerror})") from None
