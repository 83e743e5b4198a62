"""Parse Graph API insights pages into typed ``InsightRow`` values, all or nothing.

Wire facts (META_GRAPH_API.md §1; DATA_PITFALLS.md 2, 7, 8):

- counts (``impressions``, ``reach``, ``clicks``, ``inline_link_clicks``) are
  integers in JSON strings (``"10441"``) -> ``int``, within int64;
- ``spend`` is a decimal in a string (``"158.72"``) -> ``Decimal`` (never float),
  within the stored range (``services.common.number_ranges``);
- ``actions`` is ``[{"action_type": "lead", "value": "3"}, ...]`` -> ``{type: Decimal}``;
  a missing ``actions`` key -> ``None`` (conversions unknown);
- a missing numeric key -> ``None`` (unknown), never 0 and never NaN;
- rankings are ``ABOVE_AVERAGE``, ``AVERAGE``, ``BELOW_AVERAGE_35/_20/_10``, ``UNKNOWN``;
- ``account_id`` has no ``act_`` prefix; ids are numeric strings;
- daily rows have ``date_start == date_stop``;
- range rows (``time_ranges``, no ``time_increment``) have ``date_start`` =
  the range's since and ``date_stop`` = its until, with ``reach``
  deduplicated over the range (``parse_range_reach_page``).

Anything else is garbage: the whole page is rejected with ``PageFormatError``
naming the row and field, so a caller never stores half a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable

from services.common.insight_row import COUNT_FIELDS, RANKINGS, InsightRow
from services.common.number_ranges import count_problem, decimal_problem

_COUNT_RE = re.compile(r"^[0-9]+$")
_DECIMAL_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_ID_RE = re.compile(r"^[0-9]{1,25}$")
RANKING_FIELDS = ("quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking")
NAME_FIELDS = ("ad_name", "adset_name", "campaign_name")
#: Ids the fetcher always asks for and requires in every row.
ID_FIELDS = ("account_id", "ad_id", "adset_id", "campaign_id")


class PageFormatError(ValueError):
    """A page or row is not what Meta's insights edge sends; the message names row and field."""


def _count(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number = value
    elif isinstance(value, str) and _COUNT_RE.match(value):
        number = int(value)
    else:
        raise PageFormatError(f"{name}={value!r} is not a non-negative whole number in a string")
    problem = count_problem(number)
    if problem:
        raise PageFormatError(f"{name}={_short(value)} {problem}")
    return number


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number = Decimal(value)
    elif isinstance(value, str) and _DECIMAL_RE.match(value):
        number = Decimal(value)
    else:
        raise PageFormatError(f"{name}={value!r} is not a non-negative decimal in a string")
    problem = decimal_problem(number)
    if problem:
        raise PageFormatError(f"{name}={_short(value)} {problem}")
    return number


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 48 else f"{text[:40]}...({len(text)} chars)"


def _date(value: Any, name: str) -> date:
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PageFormatError(f"{name}={value!r} is not a YYYY-MM-DD date")


def _id(value: Any, name: str) -> str:
    if isinstance(value, str) and _ID_RE.match(value):
        return value
    raise PageFormatError(f"{name}={value!r} is not a numeric id string")


def _actions(value: Any) -> dict[str, Decimal]:
    if not isinstance(value, list):
        raise PageFormatError(f"actions={value!r} is not a list of {{action_type, value}}")
    out: dict[str, Decimal] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("action_type"), str) or not item["action_type"]:
            raise PageFormatError(f"actions item {item!r} has no action_type")
        action_type = item["action_type"]
        if action_type in out:
            raise PageFormatError(f"actions lists action_type {action_type!r} twice")
        if "value" not in item:
            raise PageFormatError(f"actions item {action_type!r} has no value")
        out[action_type] = _decimal(item["value"], f"actions[{action_type}].value")
    return out


def parse_row(obj: Any, *, account_id: str, required_ids: Iterable[str] = ID_FIELDS,
              fetched_at: datetime | None = None) -> InsightRow:
    """One Graph insights row -> InsightRow; raises PageFormatError (see module docstring).

    ``account_id`` is the numeric id asked for; a row of another account is an error.
    """
    if not isinstance(obj, dict):
        raise PageFormatError(f"row is {type(obj).__name__}, not a JSON object")
    ids: dict[str, str] = {}
    for name in required_ids:
        if name not in obj:
            raise PageFormatError(f"{name} is missing")
        ids[name] = _id(obj[name], name)
    for name in ID_FIELDS:
        if name not in ids and name in obj:
            ids[name] = _id(obj[name], name)
    if ids.get("account_id", account_id) != account_id:
        raise PageFormatError(f"account_id={ids['account_id']!r} but act_{account_id} was asked for")
    start = _date(obj.get("date_start"), "date_start")
    stop = _date(obj.get("date_stop"), "date_stop")
    if start != stop:
        raise PageFormatError(f"date_start {start} != date_stop {stop}: not a daily (time_increment=1) row")
    values: dict[str, Any] = {}
    for name in COUNT_FIELDS:
        if name in obj:
            values[name] = _count(obj[name], name)
    if "spend" in obj:
        values["spend"] = _decimal(obj["spend"], "spend")
    if "actions" in obj:
        values["actions"] = _actions(obj["actions"])
    for name in RANKING_FIELDS:
        if name in obj:
            if obj[name] not in RANKINGS:
                raise PageFormatError(f"{name}={obj[name]!r} is not one of {', '.join(RANKINGS)}")
            values[name] = obj[name]
    for name in NAME_FIELDS:
        if name in obj:
            if not isinstance(obj[name], str):
                raise PageFormatError(f"{name}={obj[name]!r} is not a string")
            values[name] = obj[name]
    return InsightRow(
        account_id=account_id,
        ad_id=ids.get("ad_id", ""),
        adset_id=ids.get("adset_id", ""),
        campaign_id=ids.get("campaign_id", ""),
        date_start=start,
        date_stop=stop,
        fetched_at=fetched_at,
        **values,
    )


def _page_data(body: Any, page: int) -> list:
    """The ``data`` list of a Graph page; PageFormatError when the envelope is not ``{"data": [...], "paging": {...}}``."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise PageFormatError(f"page {page}: body has no 'data' list")
    if "paging" in body and not isinstance(body["paging"], dict):
        raise PageFormatError(f"page {page}: 'paging' is not an object")
    return body["data"]


def parse_insights_page(body: Any, *, account_id: str, since: date | None = None, until: date | None = None,
                        required_ids: Iterable[str] = ID_FIELDS, page: int = 1,
                        fetched_at: datetime | None = None) -> list[InsightRow]:
    """Every row of one page, or PageFormatError for the whole page.

    ``body`` is the decoded JSON (``{"data": [...], "paging": {...}}``). Rows
    must fall inside ``since..until`` when given. The error message names the
    page number, the row index and, when known, the ad and date.
    """
    data = _page_data(body, page)
    required = tuple(required_ids)
    rows: list[InsightRow] = []
    for i, obj in enumerate(data):
        try:
            row = parse_row(obj, account_id=account_id, required_ids=required, fetched_at=fetched_at)
            if (since and row.date_start < since) or (until and row.date_start > until):
                raise PageFormatError(f"date {row.date_start} is outside the range asked for ({since}..{until})")
        except PageFormatError as exc:
            where = f"page {page}, row {i}"
            if isinstance(obj, dict):
                where += f" (ad_id={obj.get('ad_id')!r}, date_start={obj.get('date_start')!r})"
            raise PageFormatError(f"{where}: {exc}") from None
        rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class RangeReach:
    """One ad's deduplicated reach over ``date_start .. date_stop`` (``None``: Meta left ``reach`` out)."""

    ad_id: str
    date_start: date
    date_stop: date
    reach: int | None


def parse_range_reach_page(body: Any, *, account_id: str, origin: date, ends: Iterable[date],
                           page: int = 1) -> list[RangeReach]:
    """Every row of one ``time_ranges`` page, or PageFormatError for the whole page.

    Each row must carry ``ad_id``, ``date_start == origin`` and a
    ``date_stop`` among ``ends`` (the ranges asked for); ``account_id``, when
    present, must be the one asked for; ``reach`` is a count in a string or
    absent (None, never 0).
    """
    data = _page_data(body, page)
    wanted = frozenset(ends)
    out: list[RangeReach] = []
    for i, obj in enumerate(data):
        try:
            if not isinstance(obj, dict):
                raise PageFormatError(f"row is {type(obj).__name__}, not a JSON object")
            if "ad_id" not in obj:
                raise PageFormatError("ad_id is missing")
            ad_id = _id(obj["ad_id"], "ad_id")
            if "account_id" in obj and _id(obj["account_id"], "account_id") != account_id:
                raise PageFormatError(f"account_id={obj['account_id']!r} but act_{account_id} was asked for")
            start = _date(obj.get("date_start"), "date_start")
            stop = _date(obj.get("date_stop"), "date_stop")
            if start != origin:
                raise PageFormatError(f"date_start {start} is not the range start {origin} asked for")
            if stop not in wanted:
                raise PageFormatError(f"date_stop {stop} is not the end of a range asked for")
            reach = _count(obj["reach"], "reach") if "reach" in obj else None
        except PageFormatError as exc:
            where = f"page {page}, row {i}"
            if isinstance(obj, dict):
                where += f" (ad_id={obj.get('ad_id')!r}, date_stop={obj.get('date_stop')!r})"
            raise PageFormatError(f"{where}: {exc}") from None
        out.append(RangeReach(ad_id=ad_id, date_start=start, date_stop=stop, reach=reach))
    return out
