"""FatigueEngine settings: the engine is stateless; it reads the shared auth (who may call) and logging parts."""

from __future__ import annotations

from services.common.settings import AuthSettings, LoggingSettings, TlsSettings


class EngineSettings(AuthSettings, LoggingSettings, TlsSettings):
    """Everything the engine process reads from the environment."""
