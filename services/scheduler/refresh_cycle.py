"""One scheduler cycle: find the due account-days L2 knows and refresh them through the gateway.

Only days someone has already asked for (present in L2's freshness
collection) are kept fresh; days never requested are fetched on demand by the
gateway. The gateway stays the only writer: the scheduler calls its Refresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from services.cache_gateway.freshness import FreshnessPolicy
from services.cache_gateway.insights_service import zone
from services.cache_gateway.l2_store import InsightsStore
from services.cache_gateway.planner import merge_ranges
from services.common.dates import DateRange

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AccountDue:
    account_id: str
    ranges: list[DateRange]
    oldest_fetched_at: datetime | None
    due_days: int


@dataclass(slots=True)
class CycleReport:
    started: datetime
    finished: datetime | None = None
    accounts_refreshed: int = 0
    upstream_calls: int = 0
    errors: list[str] = field(default_factory=list)


async def find_due(store: InsightsStore, policy: FreshnessPolicy, now: datetime) -> list[AccountDue]:
    """Due days per account among those fetched within the restatement window (plus one day to finalise)."""
    out = []
    for account in await store.list_accounts():
        tz = zone(account.timezone)
        today = now.astimezone(tz).date()
        window = DateRange(today - timedelta(days=policy.restatement_days + 1), today)
        fetched = await store.fetched_at(account.account_id, window)
        due = sorted(d for d, at in fetched.items() if policy.is_due(d, at, now, tz))
        out.append(AccountDue(account.account_id, merge_ranges(due), min(fetched.values(), default=None), len(due)))
    return out
