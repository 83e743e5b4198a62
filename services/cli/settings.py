"""The ``adfatigue`` command's settings: environment variables, each declared once, overridden by flags.

``CliSettings`` composes the shared parts the CLI reads (MongoDB for ``backup`` /
``restore``, the development-token secret and audience, the Graph API target of
``up``, the gateway's address) with its own variables below. ``main`` builds it
once from the environment and the flags (``parse_service_args``: a flag whose
``dest`` is a field wins), so a bad value stops the command at once with the
variable, the value and what is allowed.
"""

from __future__ import annotations

from urllib.parse import urlparse

from pydantic import field_validator

from services.common.settings import (
    GatewayAddressSettings,
    MetaGraphSettings,
    MongoSettings,
    TokenMintSettings,
    setting,
)


class CliSettings(MongoSettings, TokenMintSettings, MetaGraphSettings, GatewayAddressSettings):
    """What the CLI reads from the environment (``--data-dir``, ``--gateway``, ``--prometheus``,
    ``--mongodb-uri`` and ``--db`` override the same fields)."""

    data_dir: str = setting(".adfatigue", env="ADFATIGUE_HOME", min_length=1, allowed="a directory path",
                            doc="the CLI's data folder: the running `adfatigue up`'s endpoints, development "
                                "token secret, embedded store and logs (--data-dir)")
    token: str = setting("", env="ADFATIGUE_TOKEN", secret=True, allowed="a bearer token (no spaces)",
                         doc="bearer token the CLI sends (empty: minted from the local development secret)")
    prometheus_url: str | None = setting(None, env="PROMETHEUS_URL", allowed="an http(s) URL",
                                         doc="`adfatigue status` reads the firing alerts from this Prometheus "
                                             "(unset: evaluates the alert thresholds on the services' /metrics)")

    @field_validator("token")
    @classmethod
    def _token_is_one_word(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError("contains spaces (give the token alone, without 'Bearer ')")
        return value

    @field_validator("prometheus_url")
    @classmethod
    def _prometheus_url_is_http(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError("not an http(s) URL")
        return value
