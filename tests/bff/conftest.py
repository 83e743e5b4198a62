"""One running system (real CSV account + synthetic account) with the BFF, shared by the BFF tests.

Everything is real and over loopback: embedded store, Meta sandbox, fetcher, engine, gateway, scheduler,
and the BFF process, on free ports; stopped at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
from datetime import date, timedelta

import httpx
import pytest

from services.cli.local_system import LocalSystem, SystemConfig
from tests.shared_data import require_real_csv

REAL = "act_1001"
SYNTH = "act_900000000001"
# the real dataset: 55 ads, 2025-10-29 .. 2026-04-29; the page's 180 days end on its last day
SINCE, UNTIL = "2025-11-01", "2026-04-29"


@pytest.fixture(scope="session")
def system(tmp_path_factory, page_built):
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("bff"), csv_accounts=[(require_real_csv(), REAL[4:])], gateway_port=0,
        bff_port=0, scheduler_interval_s=3600, mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"bff_{os.getpid()}"},
    )
    with LocalSystem(config) as running:
        yield running


@pytest.fixture(scope="session")
def base_url(system) -> str:
    return f"http://{system.processes['bff'].address}"


@contextlib.contextmanager
def signed_in_client(system, base_url: str, subject: str = "tester", accounts=("*",), roles=("operator",)):
    """An httpx client holding the session cookie of a fresh sign-in."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        link = system.sign_in_link(subject, accounts, roles)
        answer = client.get(link.removeprefix(base_url), follow_redirects=False)
        assert answer.status_code == 303, answer.text
        yield client


def last_delivered_day(ad: dict) -> str:
    """The last day with impressions of a page-model ad (its daily series starts at ``series.first_day``)."""
    last = max(i for i, v in enumerate(ad["series"]["impressions"]) if v)
    return (date.fromisoformat(ad["series"]["first_day"]) + timedelta(days=last)).isoformat()


def restate_and_refresh(system, base_url: str, ad_id: str, day: str, spend: str) -> int:
    """A restatement at the sandbox (Meta), then a Refresh through the BFF; returns the new version."""
    answer = httpx.post(f"{system.sandbox_url}/_sandbox/restate",
                        json={"account_id": REAL, "date": day, "ad_id": ad_id, "set": {"spend": spend}})
    assert answer.status_code == 200 and answer.json()["restated"], answer.text
    with signed_in_client(system, base_url, "operator-bot", ["*"], ["operator"]) as op:
        csrf = op.get("/api/v1/session").json()["csrf_token"]
        done = op.post(f"/api/v1/accounts/{REAL}/refresh", params={"since": day, "until": day, "force": "true"},
                       headers={"X-CSRF-Token": csrf}, timeout=120)
        assert done.status_code == 200 and done.json()["rows_changed"] >= 1, done.text
        return done.json()["version"]


@pytest.fixture
def client(system, base_url):
    with signed_in_client(system, base_url) as c:
        yield c


# -- the browser: Debian's chromium, never a downloaded one ------------------------------------------
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]}
