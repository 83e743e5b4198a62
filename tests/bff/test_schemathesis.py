"""A bounded schemathesis run over the BFF's OpenAPI document, signed in, against the real system: no 5xx.

The live stream (``/events``) never ends by design; it is covered by test_api.py and the browser tests.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from services.bff.app import create_app
from services.bff.settings import BffSettings
from tests.bff.conftest import signed_in_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def session(system, base_url):
    with signed_in_client(system, base_url, "fuzzer", ["*"], ["operator"]) as client:
        csrf = client.get("/api/v1/session").json()["csrf_token"]
        yield dict(client.cookies), csrf


# the document the BFF publishes at /api/v1/openapi.json (test_published_document_is_this_one checks it)
DOCUMENT = create_app(BffSettings(jwt_hs256_secret="schema-only")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path_regex=r"/events$")


def test_published_document_is_this_one(base_url):
    assert httpx.get(base_url + "/api/v1/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_bff_fail(case, base_url, session):
    cookies, csrf = session
    if case.path.endswith("/sign-out"):
        return  # would end the shared session; covered by test_api.py
    response = case.call(base_url=base_url, cookies=cookies, headers={"X-CSRF-Token": csrf}, timeout=120)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.query}: {response.text[:500]}"
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json"), response.text[:200]
