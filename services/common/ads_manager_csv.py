"""Read Ads Manager daily CSV exports into typed rows.

Format (as ``shared/data/meta_ads_daily_account_a.csv``): one row per ad and
day with columns ``reporting_starts, reporting_ends, campaign_name,
adset_name, ad_name, amount_spent, results, link_clicks, impressions, reach,
cpm, quality_ranking, engagement_ranking, conversion_ranking``.

Mapping to Graph API fields:

- ``amount_spent`` -> ``spend`` (Decimal, account currency);
- ``link_clicks`` -> ``inline_link_clicks`` and ``clicks``: the export has a
  single click count, so both carry it (the fatigue score uses link clicks);
- ``results`` -> ``actions[conversion_action_type]`` (``lead`` by default);
  link clicks also appear as ``actions["link_click"]`` as Meta reports them.
  A row with neither gets no ``actions`` at all, exactly as Meta leaves the
  key out when nothing happened;
- rankings: Ads Manager labels -> Graph API enums (``-`` -> ``UNKNOWN``);
- ids: the export has none, so stable numeric ids are derived from the names
  (an ad is the triple campaign / ad set / ad name; the same ad name occurs in
  two campaigns).

Bad input raises ``CsvFormatError`` naming the line and the column.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

from services.common.account_ids import normalise_account_id, stable_numeric_id
from services.common.insight_row import InsightRow

REQUIRED_COLUMNS = (
    "reporting_starts", "reporting_ends", "campaign_name", "adset_name", "ad_name",
    "amount_spent", "results", "link_clicks", "impressions", "reach",
    "quality_ranking", "engagement_ranking", "conversion_ranking",
)

RANKING_LABELS = {
    "above average": "ABOVE_AVERAGE",
    "average": "AVERAGE",
    "below average - bottom 35% of ads": "BELOW_AVERAGE_35",
    "below average - bottom 20% of ads": "BELOW_AVERAGE_20",
    "below average - bottom 10% of ads": "BELOW_AVERAGE_10",
    "-": "UNKNOWN",
    "": "UNKNOWN",
}


class CsvFormatError(ValueError):
    """The file is not an Ads Manager daily export we can read."""


def _int(value: str, line: int, column: str) -> int:
    text = value.strip()
    if text == "":
        return 0
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise CsvFormatError(f"line {line}: {column}={value!r} is not a number") from None
    if number != number.to_integral_value() or number < 0:
        raise CsvFormatError(f"line {line}: {column}={value!r} is not a non-negative whole number")
    return int(number)


def _decimal(value: str, line: int, column: str) -> Decimal:
    try:
        number = Decimal(value.strip() or "0")
    except InvalidOperation:
        raise CsvFormatError(f"line {line}: {column}={value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise CsvFormatError(f"line {line}: {column}={value!r} must be a finite number >= 0")
    return number


def _date(value: str, line: int, column: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CsvFormatError(f"line {line}: {column}={value!r} is not a YYYY-MM-DD date") from None


def _ranking(value: str, line: int, column: str) -> str:
    try:
        return RANKING_LABELS[value.strip().lower()]
    except KeyError:
        raise CsvFormatError(f"line {line}: {column}={value!r} is not an Ads Manager ranking label") from None


def parse_rows(lines: Iterable[str], account_id: str, conversion_action_type: str = "lead") -> list[InsightRow]:
    """Parse CSV text lines into rows sorted by (date_start, ad_id).

    Raises CsvFormatError for a missing column, a bad value, a row whose
    reporting_starts != reporting_ends, or the same ad twice on one day.
    """
    account = normalise_account_id(account_id)
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CsvFormatError(f"missing column(s) {', '.join(missing)}; expected an Ads Manager daily export")
    rows: dict[tuple[str, str, date], InsightRow] = {}
    for n, rec in enumerate(reader, start=2):
        if None in rec.values() or None in rec:
            raise CsvFormatError(f"line {n}: expected {len(reader.fieldnames)} columns, "
                                 f"found {len([v for v in rec.values() if v is not None]) + len(rec.get(None) or [])}")
        start = _date(rec["reporting_starts"], n, "reporting_starts")
        stop = _date(rec["reporting_ends"], n, "reporting_ends")
        if start != stop:
            raise CsvFormatError(f"line {n}: reporting_starts {start} != reporting_ends {stop}; export daily rows")
        campaign, adset, ad = rec["campaign_name"].strip(), rec["adset_name"].strip(), rec["ad_name"].strip()
        if not ad:
            raise CsvFormatError(f"line {n}: ad_name is empty")
        clicks = _int(rec["link_clicks"], n, "link_clicks")
        results = _decimal(rec["results"], n, "results")
        actions: dict[str, Decimal] = {}
        if clicks:
            actions["link_click"] = Decimal(clicks)
        if results:
            actions[conversion_action_type] = results
        row = InsightRow(
            account_id=account,
            ad_id=stable_numeric_id(account, campaign, adset, ad),
            ad_name=ad,
            adset_id=stable_numeric_id(account, campaign, adset),
            adset_name=adset,
            campaign_id=stable_numeric_id(account, campaign),
            campaign_name=campaign,
            date_start=start,
            date_stop=stop,
            impressions=_int(rec["impressions"], n, "impressions"),
            reach=_int(rec["reach"], n, "reach"),
            clicks=clicks,
            inline_link_clicks=clicks,
            spend=_decimal(rec["amount_spent"], n, "amount_spent"),
            actions=actions or None,
            quality_ranking=_ranking(rec["quality_ranking"], n, "quality_ranking"),
            engagement_rate_ranking=_ranking(rec["engagement_ranking"], n, "engagement_ranking"),
            conversion_rate_ranking=_ranking(rec["conversion_ranking"], n, "conversion_ranking"),
        )
        if row.key in rows:
            raise CsvFormatError(f"line {n}: ad {campaign!r}/{adset!r}/{ad!r} appears twice on {start}")
        rows[row.key] = row
    return sorted(rows.values(), key=lambda r: (r.date_start, r.ad_id))


def load_csv(path: str | Path, account_id: str, conversion_action_type: str = "lead") -> list[InsightRow]:
    """Read an Ads Manager daily export file (UTF-8, or UTF-16 with a byte-order mark, as spreadsheet
    programs save it); see ``parse_rows``. Raises CsvFormatError for text in another encoding."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    encoding = "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        with open(path, newline="", encoding=encoding) as fh:
            return parse_rows(fh, account_id, conversion_action_type)
    except UnicodeDecodeError as exc:
        raise CsvFormatError(f"not {encoding.upper()} text (byte {exc.start}): save the export as CSV UTF-8") from None


def default_account_id(path: str | Path) -> str:
    """A stable account id for a CSV file given without ``--account`` (from its file name)."""
    return stable_numeric_id("csv-account", Path(path).stem, digits=12)

