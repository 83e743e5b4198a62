"""The oldest day Meta still serves, before an account's time zone is known.

Finding: a freshly started meta_fetcher, not knowing the zone yet, used the latest "today" of any zone
(UTC + 1 day) for the retention floor too, so it refused a day the gateway (which knew the zone) asked
for: "since 2023-11-03 is older than Meta's 37-month retention: the oldest date ... is 2023-11-04".
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.common.dates import account_today, oldest_fetchable_day, retention_floor
from services.meta_fetcher.request_validation import validate_fetch_request

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Asia/Kuala_Lumpur", "UTC", "America/Los_Angeles",
                                  "Pacific/Pago_Pago"])
def test_with_no_zone_known_no_day_any_zone_can_fetch_is_refused(zone):
    assert oldest_fetchable_day(None, NOW) <= oldest_fetchable_day(zone, NOW) == retention_floor(
        account_today(zone, NOW))
    floor = oldest_fetchable_day(zone, NOW).isoformat()
    assert validate_fetch_request("act_1", floor, floor, [], timezone_name=None, now=NOW).since.isoformat() == floor
