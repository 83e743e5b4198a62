"""A provider that replays Ads Manager CSV exports: an ad account analysed offline (DESIGN.md R14).

Each account is one daily export (``services.common.ads_manager_csv``, the
format of ``shared/data/meta_ads_daily_account_a.csv``), read with
``load_export`` so the rows are exactly those the Meta sandbox serves for the
same file. The file is read again when its size or modification time
changes, so dropping in a newer export is how the account is "refreshed".

- ``fetch_insights``: the file's rows inside the range. Which of them are new
  or changed is the store's business (``services/providers/base.py``).
- Exports carry no time zone or currency: they are settings (defaults: the
  shared dataset's ``Asia/Kuala_Lumpur`` / ``MYR``).
- The export has daily reach only, so ``reach_cum`` is never filled
  (FATIGUE_SPEC.md: never estimated from daily reach).

Errors (``ProviderError``): NOT_FOUND for an account with no file,
INVALID_ARGUMENT for ``until < since``, UNAVAILABLE
when the file cannot be read, DATA_LOSS when it does not parse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass
import logging
from datetime import date
from pathlib import Path
from typing import Mapping

import grpc

from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.ads_manager_csv import CsvFormatError, load_export
from services.common.insight_row import InsightRow
from services.providers.base import ProviderAccount, ProviderError

log = logging.getLogger(__name__)

NAME = "ads_manager_csv"
DEFAULT_TIMEZONE = "Asia/Kuala_Lumpur"
DEFAULT_CURRENCY = "MYR"


def parse_csv_accounts(spec: str | None) -> dict[str, Path]:
    """``"act_1=/a.csv,act_2=/b.csv"`` (the ``PROVIDER_CSV`` setting) -> {numeric account id: path}.

    Raises ValueError naming the bad entry (no ``=``, bad account id, an account twice).
    """
    out: dict[str, Path] = {}
    for n, entry in enumerate((e.strip() for e in (spec or "").split(",")), start=1):
        if not entry:
            continue
        account, sep, path = entry.partition("=")
        if not sep or not path.strip():
            raise ValueError(f"PROVIDER_CSV entry {n} {entry!r} is not act_ID=PATH")
        try:
            account_id = normalise_account_id(account.strip())
        except InvalidAccountId as exc:
            raise ValueError(f"PROVIDER_CSV entry {n}: {exc}") from None
        if account_id in out:
            raise ValueError(f"PROVIDER_CSV names act_{account_id} twice")
        out[account_id] = Path(path.strip())
    return out


@dataclass
class _Loaded:
    stamp: tuple[int, int]
    rows: list[InsightRow]


class CsvReplayProvider:
    """Serves accounts from Ads Manager CSV exports; see the module docstring."""

    name = NAME

    def __init__(self, files: Mapping[str, str | Path], *, timezone_name: str = DEFAULT_TIMEZONE,
                 currency: str = DEFAULT_CURRENCY, conversion_action_type: str = "lead") -> None:
        self.files = {normalise_account_id(a): Path(p) for a, p in files.items()}
        self.timezone_name = timezone_name
        self.currency = currency
        self.conversion_action_type = conversion_action_type
        self._loaded: dict[str, _Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def serves(self, account_id: str) -> bool:
        """True when ``account_id`` (``act_`` or numeric) has a file here."""
        try:
            return normalise_account_id(account_id) in self.files
        except InvalidAccountId:
            return False

    def _account(self, account_id: str) -> str:
        try:
            account = normalise_account_id(account_id)
        except InvalidAccountId as exc:
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        if account not in self.files:
            raise ProviderError(grpc.StatusCode.NOT_FOUND, f"no CSV export is configured for act_{account}")
        return account

    async def _load(self, account: str) -> _Loaded:
        path = self.files[account]
        lock = self._locks.setdefault(account, asyncio.Lock())
        async with lock:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ProviderError(grpc.StatusCode.UNAVAILABLE,
                                    f"the CSV export for act_{account} cannot be read: {exc.strerror} ({path})") from None
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._loaded.get(account)
            if cached is not None and cached.stamp == stamp:
                return cached

            def read() -> _Loaded:
                imported = load_export(path, account, self.conversion_action_type)
                log.info("act_%s from %s: %s", account, path.name, imported.report)
                return _Loaded(stamp, imported.rows)

            try:
                loaded = await asyncio.to_thread(read)
            except CsvFormatError as exc:
                raise ProviderError(grpc.StatusCode.DATA_LOSS,
                                    f"the CSV export for act_{account} does not parse: {exc}") from None
            except OSError as exc:
                raise ProviderError(grpc.StatusCode.UNAVAILABLE,
                                    f"the CSV export for act_{account} cannot be read: {exc.strerror} ({path})") from None
            self._loaded[account] = loaded
            return loaded

    @classmethod
    def from_resources(cls, resources) -> "CsvReplayProvider":
        """From meta_fetcher's settings: ``PROVIDER_CSV`` (none: serves no account), ``PROVIDER_CSV_TIMEZONE``,
        ``PROVIDER_CSV_CURRENCY``. A bad ``PROVIDER_CSV`` raises ValueError naming the entry."""
        s = resources.settings
        return cls(parse_csv_accounts(s.provider_csv), timezone_name=s.provider_csv_timezone,
                   currency=s.provider_csv_currency)

    async def account_info(self, account_id: str, counter=None) -> ProviderAccount:
        """The file's stem as the name; time zone and currency from the provider's settings."""
        account = self._account(account_id)
        return ProviderAccount(account_id=account, name=self.files[account].stem, currency=self.currency,
                               timezone_name=self.timezone_name)

    async def fetch_insights(self, account_id: str, since: date, until: date, *, fields=(), attribution=(),
                             with_reach_cum: bool = False, counter=None) -> list[InsightRow]:
        """The file's rows with ``since <= date_start <= until``, sorted by (date_start, ad_id); every field the
        export has (never ``reach_cum``), no upstream call. An export holds one attribution setting: it is
        taken as ``attribution`` (the one the account asks for) when given."""
        account = self._account(account_id)
        if until < since:
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT, f"until {until} is before since {since}")
        loaded = await self._load(account)
        rows = [r for r in loaded.rows if since <= r.date_start <= until]
        if attribution:
            rows = [dataclasses.replace(r, action_attribution_windows=tuple(attribution)) for r in rows]
        return rows

    async def aclose(self) -> None:
        """Forget loaded files."""
        self._loaded.clear()
