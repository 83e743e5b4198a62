"""A third provider for tests: one module implementing the provider protocol, nothing else (R14).

Serves the accounts it was configured with: one ad, 10 impressions a day, time zone Asia/Tokyo.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import grpc

from services.common.account_ids import normalise_account_id
from services.common.insight_row import InsightRow
from services.providers.base import ProviderAccount, ProviderError

TOY_ACCOUNT = "424242"


class ToyProvider:
    name = "toy"

    def __init__(self, accounts=(TOY_ACCOUNT,)) -> None:
        self.accounts = set(accounts)
        self.fetches = 0

    @classmethod
    def from_resources(cls, resources) -> "ToyProvider":
        return cls()

    def serves(self, account_id: str) -> bool:
        return normalise_account_id(account_id) in self.accounts

    async def account_info(self, account_id: str, counter=None) -> ProviderAccount:
        return ProviderAccount(normalise_account_id(account_id), "Toy account", "JPY", "Asia/Tokyo")

    async def fetch_insights(self, account_id, since: date, until: date, *, fields=(), attribution=(),
                             with_reach_cum=False, counter=None) -> list[InsightRow]:
        if until < since:
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT, "until is before since")
        self.fetches += 1
        account = normalise_account_id(account_id)
        rows = [InsightRow(account_id=account, ad_id="7", adset_id="70", campaign_id="700", date_start=d,
                           date_stop=d, impressions=10, spend=Decimal("1.00"), ad_name="Toy ad")
                for d in (since + timedelta(days=i) for i in range((until - since).days + 1))]
        return [dataclasses.replace(r, action_attribution_windows=tuple(attribution)) for r in rows]

    async def aclose(self) -> None:
        return None
