"""The sandbox's settings (``python -m services.meta_sandbox``): the one it takes from the environment.

Everything else is a flag (``runner._parse_args``). ``SANDBOX_APP_SECRET`` is an
environment variable, never a flag, so it stays out of ``ps`` and shell history.
"""

from __future__ import annotations

from services.common.settings import SettingsModel, setting


class SandboxSettings(SettingsModel):
    """The sandbox's environment settings."""

    app_secret: str = setting("", env="SANDBOX_APP_SECRET", secret=True,
                              doc="the sandbox's app secret: the token exchange checks it and every call must "
                                  "carry appsecret_proof (empty: not checked)")
