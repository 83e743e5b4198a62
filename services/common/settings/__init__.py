"""One settings layer for every service (pydantic-settings).

``base``: the machinery (``SettingsModel``, ``setting``, ``SettingsError``,
``parse_service_args``); ``parts``: the settings several services share. Each
service composes its model from the parts in ``services/<service>/settings.py``.
"""

from services.common.settings.base import (
    SettingsError,
    SettingsModel,
    describe_allowed,
    env_name,
    is_secret,
    parse_service_args,
    setting,
)
from services.common.settings.parts import (
    AuthSettings,
    FreshnessSettings,
    GatewayAddressSettings,
    LoggingSettings,
    MetaBudgetSettings,
    MetaGraphSettings,
    MetaPagingSettings,
    MongoSettings,
    NotifySettings,
    RedisSettings,
    SchedulerLeaseSettings,
    TelemetrySettings,
    TlsSettings,
    TokenMintSettings,
    check_host_port,
    lease_key_for,
)

__all__ = [
    "AuthSettings", "FreshnessSettings", "GatewayAddressSettings", "LoggingSettings", "MetaBudgetSettings",
    "MetaGraphSettings", "MetaPagingSettings", "MongoSettings", "NotifySettings", "RedisSettings",
    "SchedulerLeaseSettings", "SettingsError", "SettingsModel", "TelemetrySettings", "TlsSettings",
    "TokenMintSettings", "check_host_port", "describe_allowed", "env_name", "is_secret", "lease_key_for",
    "parse_service_args", "setting",
]
