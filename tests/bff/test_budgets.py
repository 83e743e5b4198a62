"""Size budgets of the page (the original design's 3 s on a 3G connection), measured on the wire."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.bff.conftest import REAL, SINCE, UNTIL

pytestmark = pytest.mark.e2e
KB = 1024


def wire_bytes(client: httpx.Client, path: str, **params) -> tuple[int, httpx.Response]:
    """Bytes of the body as sent (before decompression), asking for gzip like a browser."""
    with client.stream("GET", path, params=params or None, headers={"accept-encoding": "gzip, br"}) as answer:
        assert answer.status_code == 200, answer.read()
        size = sum(len(chunk) for chunk in answer.iter_raw())
    return size, answer


def test_javascript_and_css_fit_150_kb_gzipped(base_url):
    with httpx.Client(base_url=base_url) as client:
        index = client.get("/ad-fatigue").text
        assets = re.findall(r'(?:src|href)="(/ad-fatigue/assets/[^"]+\.(?:js|css))"', index)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), index
        total = 0
        for asset in assets:
            size, answer = wire_bytes(client, asset)
            assert answer.headers.get("content-encoding") == "gzip", asset
            assert "immutable" in answer.headers["cache-control"]
            total += size
    print(f"JS + CSS: {total / KB:.1f} KB on the wire")
    assert total <= 150 * KB, f"JS + CSS = {total / KB:.1f} KB gzipped"


def test_first_page_model_of_55_ads_x_180_days_fits_150_kb(client):
    size, answer = wire_bytes(client, f"/api/v1/accounts/{REAL}/fatigue", since=SINCE, until=UNTIL)
    assert answer.headers["content-encoding"] == "gzip"
    print(f"page model of 55 ads x 180 days: {size / KB:.1f} KB on the wire")
    assert size <= 150 * KB, f"page model = {size / KB:.1f} KB on the wire"
