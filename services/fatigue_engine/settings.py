"""FatigueEngine settings: the engine reads only the shared logging part (it is stateless)."""

from __future__ import annotations

from services.common.settings import LoggingSettings


class EngineSettings(LoggingSettings):
    """Everything the engine process reads from the environment."""
