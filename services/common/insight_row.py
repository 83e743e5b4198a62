"""The typed daily insights row every service works with.

Meta sends every number as a JSON string; rows are parsed once at ingest
(``services.meta_fetcher.graph_parsing``) into this form and never carried as
strings or floats again. Units: counts are ``int``; ``spend`` is a
``Decimal`` in the ad account's currency; dates are account time-zone
calendar dates. ``None`` always means *unknown* (Meta left the key out),
never zero (DATA_PITFALLS.md 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

RANKINGS = ("ABOVE_AVERAGE", "AVERAGE", "BELOW_AVERAGE_35", "BELOW_AVERAGE_20", "BELOW_AVERAGE_10", "UNKNOWN")

#: Numeric fields of a row, in Graph API names.
COUNT_FIELDS = ("impressions", "reach", "clicks", "inline_link_clicks")


@dataclass(frozen=True, slots=True)
class InsightRow:
    """One ad on one day (Graph API ``level=ad``, ``time_increment=1``).

    Key: ``(account_id, ad_id, date_start)``. ``actions`` maps a Graph API
    ``action_type`` to its value; ``None`` means Meta sent no ``actions`` at
    all (conversions unknown), while a present map that lacks a type means 0
    of that type (DATA_PITFALLS.md 8). ``reach`` is deduplicated within the
    day only and must never be summed across days; ``reach_cum`` is the
    deduplicated reach over [first delivery day .. date_start] when a provider
    supplies it.
    """

    account_id: str
    ad_id: str
    date_start: date
    date_stop: date
    ad_name: str = ""
    adset_id: str = ""
    adset_name: str = ""
    campaign_id: str = ""
    campaign_name: str = ""
    impressions: int | None = None
    reach: int | None = None
    clicks: int | None = None
    inline_link_clicks: int | None = None
    spend: Decimal | None = None
    actions: dict[str, Decimal] | None = None
    quality_ranking: str | None = None
    engagement_rate_ranking: str | None = None
    conversion_rate_ranking: str | None = None
    reach_cum: int | None = None
    fetched_at: datetime | None = field(default=None, compare=False)
    #: the attribution setting that produced ``actions`` (sorted Graph windows, ``services.common.attribution``);
    #: () = unknown. Stored with the row and part of its content hash in L2; like ``fetched_at`` it is left out
    #: of ``==`` so rows of two sources can be compared by their values.
    action_attribution_windows: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple[str, str, date]:
        """The row's identity: (account_id, ad_id, date_start)."""
        return (self.account_id, self.ad_id, self.date_start)

    def conversions(self, action_type: str) -> Decimal | None:
        """Conversions of ``action_type`` on this day; ``None`` when ``actions`` is absent."""
        if self.actions is None:
            return None
        return self.actions.get(action_type, Decimal(0))
