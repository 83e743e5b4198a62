"""TLS for every gRPC server and channel of the project, when certificates are configured (issue 15).

Settings (environment; paths to PEM files, all optional; none set = plaintext, fine on loopback):

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

import os
from dataclasses import dataclass
from pathlib import Path

import grpc

CLIENT_AUTH_MODES = ("none", "optional", "require")


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
    def from_env(cls, env: dict[str, str] | None = None) -> "TlsConfig | None":
        """The configured TLS, or None when no ``GRPC_TLS_*`` setting is set. Raises TlsConfigError."""
        env = env if env is not None else dict(os.environ)
        cert, key, ca = env.get("GRPC_TLS_CERT", ""), env.get("GRPC_TLS_KEY", ""), env.get("GRPC_TLS_CA", "")
        if not (cert or key or ca):
            return None
        if bool(cert) != bool(key):
            raise TlsConfigError("set both GRPC_TLS_CERT and GRPC_TLS_KEY (the certificate and its private key), "
                                 "or neither")
        mode = (env.get("GRPC_TLS_CLIENT_AUTH") or "none").lower()
        if mode not in CLIENT_AUTH_MODES:
            raise TlsConfigError(f"GRPC_TLS_CLIENT_AUTH must be one of {', '.join(CLIENT_AUTH_MODES)}")
        if mode != "none" and not ca:
            raise TlsConfigError("GRPC_TLS_CLIENT_AUTH needs GRPC_TLS_CA (the CA client certificates must chain to)")
        health = env.get("GRPC_HEALTH_PORT", "")
        if health and not (health.isdigit() and 0 <= int(health) <= 65535):
            raise TlsConfigError("GRPC_HEALTH_PORT must be a port number (0 to 65535)")
        return cls(_read(cert, "GRPC_TLS_CERT"), _read(key, "GRPC_TLS_KEY"), _read(ca, "GRPC_TLS_CA"), mode,
                   env.get("GRPC_TLS_SERVER_NAME", ""), int(health) if health else None)

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
