"""FatigueEngine settings: the engine is stateless; it reads the shared auth (who may call) and logging parts."""

from __future__ import annotations

from services.common.settings import AuthSettings, LoggingSettings


class EngineSettings(AuthSettings, LoggingSettings):
    """Everything the engine process reads from the environment."""
