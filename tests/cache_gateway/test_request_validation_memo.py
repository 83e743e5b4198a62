"""The gateway memoises a valid request's parse (account, range) — never past what could change the answer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc
import pytest

from services.cache_gateway.servicer import CacheGatewayServicer


class _Service:
    """The two InsightsService calls ``_validate`` makes (a unit test of one module: no store)."""

    def __init__(self):
        self.zones: dict[str, str] = {}

    def known_timezone(self, account_id):
        return self.zones.get(account_id)

    async def timezone_name(self, account_id):
        return self.zones.get(account_id)


class _Aborted(Exception):
    pass


class _Context:
    async def abort(self, code, message):
        raise _Aborted(code, message)


def _servicer() -> CacheGatewayServicer:
    servicer = CacheGatewayServicer.__new__(CacheGatewayServicer)
    servicer.service = _Service()
    servicer._valid = {}
    return servicer


async def test_a_range_valid_before_the_zone_was_known_is_checked_again_once_it_is():
    servicer = _servicer()
    tomorrow_utc = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    # no zone yet: "today" is the latest of any zone (UTC + 1 day), so the range is accepted...
    account, days = await servicer._validate(_Context(), "act_42", tomorrow_utc, tomorrow_utc)
    assert account == "42" and days.until.isoformat() == tomorrow_utc
    again = await servicer._validate(_Context(), "act_42", tomorrow_utc, tomorrow_utc)
    assert again == (account, days)
    # ...and once the account's zone is known to be behind UTC, the same request ends after its today
    servicer.service.zones["42"] = "Pacific/Honolulu"
    with pytest.raises(_Aborted) as refused:
        await servicer._validate(_Context(), "act_42", tomorrow_utc, tomorrow_utc)
    assert refused.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT and "after today" in refused.value.args[1]


async def test_an_invalid_request_is_never_memoised():
    servicer = _servicer()
    for _ in range(2):
        with pytest.raises(_Aborted):
            await servicer._validate(_Context(), "act_42", "2026-02-30", "2026-03-01")
    assert servicer._valid == {}
