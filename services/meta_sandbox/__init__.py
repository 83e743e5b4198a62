"""meta_sandbox: a Graph API v23.0 (Ads Insights) sandbox for local runs and tests.

``create_app`` builds the aiohttp app, ``sandbox_server`` runs it in-process on a
free port, ``python -m services.meta_sandbox`` runs it as a process. See
``services.meta_sandbox.app`` for the endpoints and ``synthetic`` for the
built-in account.
"""

from services.meta_sandbox.accounts import SandboxAccount, csv_account
from services.meta_sandbox.app import create_app
from services.meta_sandbox.runner import sandbox_server
from services.meta_sandbox.synthetic import SYNTHETIC_ACCOUNT_ID, synthetic_account

__all__ = ["SandboxAccount", "csv_account", "create_app", "sandbox_server", "synthetic_account",
           "SYNTHETIC_ACCOUNT_ID"]
