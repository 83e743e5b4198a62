"""Ad accounts served by the Graph API sandbox.

A ``SandboxAccount`` is the sandbox's copy of one Meta ad account: its
metadata (what ``GET /act_{id}?fields=...`` answers) and its daily ad-level
rows (what ``GET /act_{id}/insights?level=ad&time_increment=1`` pages through).
Rows are typed ``InsightRow`` values, rendered to Meta's wire format
(string-typed numbers) only when answered (``services.meta_sandbox.wire``).

Accounts come from Ads Manager CSV exports (``csv_account``) or from the
seeded synthetic generator (``services.meta_sandbox.synthetic``).
``range_rows`` answers ``time_ranges`` queries: one row per ad and range with
reach from the saturation model of ``services.meta_sandbox.reach_model``.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Callable

from services.common.account_ids import normalise_account_id
from services.common.ads_manager_csv import load_export
from services.common.effective_status import EFFECTIVE_STATUSES, HIDDEN_BY_DEFAULT
from services.common.insight_row import InsightRow
from services.meta_sandbox.reach_model import aggregate_range, audience_from_rows

log = logging.getLogger(__name__)

#: Time zone and currency of the shared real dataset (shared/data/README.md: MYR, a Malaysian business).
CSV_DEFAULT_TIMEZONE = "Asia/Kuala_Lumpur"
CSV_DEFAULT_CURRENCY = "MYR"


@dataclass
class SandboxAccount:
    """One ad account: metadata plus daily rows keyed by (ad_id, date_start).

    ``account_id`` is numeric (no ``act_``). ``timezone_name`` is an IANA name;
    row dates are calendar dates in that zone (META_GRAPH_API.md §4).
    ``audiences``: audience size (people) per ad id for the reach model; an ad
    without one gets it derived from its rows (``reach_model.audience_from_rows``).
    """

    account_id: str
    name: str
    currency: str
    timezone_name: str
    rows: list[InsightRow] = field(default_factory=list)
    audiences: dict[str, float] = field(default_factory=dict)
    #: ad id -> Meta ``effective_status`` (``services.common.effective_status``); absent = ACTIVE.
    ad_status: dict[str, str] = field(default_factory=dict)
    #: a query spanning more days gets "Please reduce the amount of data" at any page size (None: no limit)
    max_query_days: int | None = None

    def __post_init__(self) -> None:
        self.account_id = normalise_account_id(self.account_id)
        self.sort()

    def sort(self) -> None:
        """Keep rows in Meta-like answer order: (date_start, ad_id)."""
        self.rows.sort(key=lambda r: (r.date_start, r.ad_id))

    def status_of(self, ad_id: str) -> str:
        """The ad's ``effective_status`` (ACTIVE unless set with ``set_status``)."""
        return self.ad_status.get(ad_id, "ACTIVE")

    def set_status(self, ad_id: str, status: str) -> None:
        """Archive, delete, pause... an ad (``effective_status``). Raises ValueError for an unknown ad or status."""
        if status not in EFFECTIVE_STATUSES:
            raise ValueError(f"effective_status {status!r} is not one of {', '.join(EFFECTIVE_STATUSES)}")
        if not any(r.ad_id == ad_id for r in self.rows):
            raise ValueError(f"act_{self.account_id} has no ad {ad_id!r}")
        self.ad_status[ad_id] = status

    def visible(self, statuses: frozenset[str] | None) -> Callable[[InsightRow], bool]:
        """Whether a row's ad is answered: its status is in ``statuses`` (None: Meta's default, every status but
        ``HIDDEN_BY_DEFAULT``)."""
        if statuses is None:
            return lambda r: self.status_of(r.ad_id) not in HIDDEN_BY_DEFAULT
        return lambda r: self.status_of(r.ad_id) in statuses

    def rows_between(self, since: date, until: date, statuses: frozenset[str] | None = None) -> list[InsightRow]:
        """Rows whose ``date_start`` lies in the inclusive range and whose ad is ``visible``, in answer order."""
        show = self.visible(statuses)
        return [r for r in self.rows if since <= r.date_start <= until and show(r)]

    def range_rows(self, ranges: list[tuple[date, date]], statuses: frozenset[str] | None = None) -> list[InsightRow]:
        """One aggregated row per (range, ad with rows in the range), ranges in the order given, ads by id.

        Rows carry ``date_start``/``date_stop`` = the range; counts summed; ``reach``
        deduplicated over the range by the saturation model (``reach_model``).
        """
        by_ad: dict[str, list[InsightRow]] = defaultdict(list)
        show = self.visible(statuses)
        for row in self.rows:  # already in date order
            if show(row):
                by_ad[row.ad_id].append(row)
        days = {ad: [r.date_start for r in rows] for ad, rows in by_ad.items()}
        audience = {ad: self.audiences.get(ad) or audience_from_rows(rows) for ad, rows in by_ad.items()}
        out: list[InsightRow] = []
        for since, until in ranges:
            for ad in sorted(by_ad):
                lo, hi = bisect.bisect_left(days[ad], since), bisect.bisect_right(days[ad], until)
                if lo < hi:
                    out.append(aggregate_range(by_ad[ad][lo:hi], since, until, audience[ad]))
        return out

    @property
    def active_ads(self) -> int:
        """Number of distinct ads (used for the BUC capacity formula, META_GRAPH_API.md §3)."""
        return len({r.ad_id for r in self.rows})

    def restate(
        self,
        day: date,
        ad_id: str | None = None,
        actions_delta: dict[str, Decimal] | None = None,
        set_values: dict[str, object] | None = None,
    ) -> int:
        """Change the rows of ``day`` (one ad or all ads) as Meta restates a recent day.

        ``actions_delta`` adds to action values (creating ``actions`` if absent);
        ``set_values`` replaces plain fields (``impressions``, ``spend``, ...).
        Returns the number of rows changed. Raises ValueError for an unknown field.
        """
        allowed = {f.name for f in dataclasses.fields(InsightRow)} - {"account_id", "ad_id", "date_start", "date_stop"}
        unknown = set(set_values or {}) - allowed
        if unknown:
            raise ValueError(f"cannot restate field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        changed = 0
        for i, row in enumerate(self.rows):
            if row.date_start != day or (ad_id is not None and row.ad_id != ad_id):
                continue
            updates: dict[str, object] = dict(set_values or {})
            if actions_delta:
                actions = dict(row.actions or {})
                for action_type, delta in actions_delta.items():
                    actions[action_type] = actions.get(action_type, Decimal(0)) + delta
                updates["actions"] = actions
            self.rows[i] = dataclasses.replace(row, **updates)
            changed += 1
        return changed


def csv_account(
    path: str | Path,
    account_id: str,
    *,
    name: str | None = None,
    currency: str | None = None,
    timezone_name: str = CSV_DEFAULT_TIMEZONE,
    conversion_action_type: str = "lead",
) -> SandboxAccount:
    """An account whose rows are exactly ``load_export(path, account_id).rows``.

    ``currency``: None takes the one the export's headers name ("Amount spent
    (USD)"), else ``CSV_DEFAULT_CURRENCY``. The import's report (rows, summary
    rows skipped) is logged. Raises OSError when the file is missing and
    CsvFormatError when it does not parse.
    """
    imported = load_export(path, account_id, conversion_action_type)
    log.info("act_%s from %s: %s", normalise_account_id(account_id), Path(path).name, imported.report)
    return SandboxAccount(
        account_id=account_id,
        name=name or Path(path).stem,
        currency=currency or imported.currency or CSV_DEFAULT_CURRENCY,
        timezone_name=timezone_name,
        rows=imported.rows,
    )
