"""Read Ads Manager daily CSV exports, as people download them, into typed rows.

Accepted files (one row per ad and day):

- the shared dataset's snake_case columns (``reporting_starts, reporting_ends,
  campaign_name, adset_name, ad_name, amount_spent, results, link_clicks,
  impressions, reach, cpm, quality_ranking, engagement_ranking, conversion_ranking``);
- Ads Manager's English export headers ("Reporting starts", "Ad set name",
  "Amount spent (USD)", "Link clicks", "Engagement rate ranking", ...), the
  currency inside the header;
- Ads Manager's Japanese export headers ("レポート開始日", "広告セット名",
  "消化金額 (JPY)", "リンクのクリック", ...).

``HEADER_ALIASES`` lists every header accepted per column. Sources: Ads Manager
exports as published in public repositories (English: the column names Meta's
UI shows; Japanese: headers read by several public importers of ja_JP exports,
e.g. "消化金額 (JPY)", "リンクのクリック", "レポート開始日", "日"); the Japanese
ranking column names and labels are [unverified] against a real ja_JP export.
Headers are matched case- and space-insensitively, with a byte-order mark, a
``(CUR)`` / ``（CUR）`` currency suffix and full-width brackets tolerated; the
currency found is reported (``CsvImport.currency``). Columns not in the table
(CPM, frequency, cost per result, ...) are ignored. A "Day" / "日" column
stands for both reporting dates.

Cell values:

- numbers may carry thousands separators (``1,234``) and a currency symbol
  (``$``, ``¥``, ``￥``, ``€``, ``£``, ``RM``, or the ISO code) before or after;
- ``-`` or an empty cell is *unknown* (``None``, never 0) for counts and spend;
  an empty ``results`` means no conversions, as Ads Manager writes it;
- every number is checked against the range the platform stores
  (``services.common.number_ranges``);
- dates are ``YYYY-MM-DD`` or ``YYYY/MM/DD``.

Summary and total rows (blank campaign *and* ad set name, or a name cell that
is a total label such as "Total", "合計", "Results from 12 ads") are skipped
and counted (``CsvImport.skipped_summary_lines``). Anything else that does not
read raises ``CsvFormatError`` naming the line and the column, and nothing of
the file is returned (all or nothing).

Mapping to Graph API fields: ``amount_spent`` -> ``spend`` (Decimal, account
currency); ``link_clicks`` -> ``inline_link_clicks`` and, when the export has no
"Clicks (all)" column, ``clicks`` too; ``results`` -> ``actions[type]`` with type
``conversion_action_type`` (``lead`` by default) or the export's "Result
indicator" (``actions:lead`` -> ``lead``); link clicks also appear as
``actions["link_click"]``; a row with neither gets no ``actions`` at all;
rankings: Ads Manager labels -> Graph API enums (``-`` -> ``UNKNOWN``). Ids:
the export's "Ad ID" / "Ad set ID" / "Campaign ID" columns when present,
otherwise stable numeric ids derived from the names (an ad is the triple
campaign / ad set / ad name; the same ad name occurs in two campaigns).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

from services.common.account_ids import normalise_account_id, stable_numeric_id
from services.common.insight_row import InsightRow
from services.common.number_ranges import count_problem, decimal_problem

#: column -> every header accepted for it (English Ads Manager, Japanese Ads Manager, snake_case).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "reporting_starts": ("reporting_starts", "Reporting starts", "レポート開始日"),
    "reporting_ends": ("reporting_ends", "Reporting ends", "レポート終了日"),
    "day": ("day", "Day", "日", "日付"),
    "campaign_name": ("campaign_name", "Campaign name", "キャンペーン名"),
    "adset_name": ("adset_name", "Ad set name", "広告セット名"),
    "ad_name": ("ad_name", "Ad name", "広告名", "広告の名前"),
    "campaign_id": ("campaign_id", "Campaign ID", "キャンペーンID"),
    "adset_id": ("adset_id", "Ad set ID", "広告セットID"),
    "ad_id": ("ad_id", "Ad ID", "広告ID"),
    "amount_spent": ("amount_spent", "Amount spent", "消化金額"),
    "results": ("results", "Results", "結果"),
    "result_indicator": ("result_indicator", "Result indicator", "結果インジケーター"),
    "link_clicks": ("link_clicks", "Link clicks", "リンクのクリック", "リンククリック"),
    "clicks_all": ("clicks_all", "Clicks (all)", "クリック(すべて)"),
    "impressions": ("impressions", "Impressions", "インプレッション"),
    "reach": ("reach", "Reach", "リーチ"),
    "quality_ranking": ("quality_ranking", "Quality ranking", "品質ランキング"),
    "engagement_ranking": ("engagement_ranking", "Engagement rate ranking", "エンゲージメント率ランキング"),
    "conversion_ranking": ("conversion_ranking", "Conversion rate ranking", "コンバージョン率ランキング"),
}
REQUIRED = ("campaign_name", "adset_name", "ad_name", "amount_spent", "results", "link_clicks", "impressions",
            "reach")
#: The shared dataset's snake_case columns, in its order (what a minimal export of this format holds).
REQUIRED_COLUMNS = ("reporting_starts", "reporting_ends", "campaign_name", "adset_name", "ad_name", "amount_spent",
                    "results", "link_clicks", "impressions", "reach", "quality_ranking", "engagement_ranking",
                    "conversion_ranking")
RANKING_COLUMNS = {"quality_ranking": "quality_ranking", "engagement_ranking": "engagement_rate_ranking",
                   "conversion_ranking": "conversion_rate_ranking"}

#: Ads Manager ranking labels (English; Japanese [unverified]) -> Graph API enums.
RANKING_LABELS = {
    "above average": "ABOVE_AVERAGE",
    "average": "AVERAGE",
    "below average - bottom 35% of ads": "BELOW_AVERAGE_35",
    "below average - bottom 20% of ads": "BELOW_AVERAGE_20",
    "below average - bottom 10% of ads": "BELOW_AVERAGE_10",
    "平均以上": "ABOVE_AVERAGE",
    "平均": "AVERAGE",
    "平均以下 - 下位35%の広告": "BELOW_AVERAGE_35",
    "平均以下 - 下位20%の広告": "BELOW_AVERAGE_20",
    "平均以下 - 下位10%の広告": "BELOW_AVERAGE_10",
    "-": "UNKNOWN",
    "": "UNKNOWN",
}
#: A name cell that marks a summary / total row.
TOTAL_LABEL = re.compile(r"^(total|totals|grand total|合計|総計|results from \d[\d,]* (ads?|ad sets?|campaigns?)|"
                         r"\d[\d,]*\s*件の(広告|広告セット|キャンペーン)の結果)$", re.IGNORECASE)
CURRENCY_SUFFIX = re.compile(r"^(.*?)\s*\(([A-Z]{3})\)$")
CURRENCY_SYMBOLS = ("US$", "RM", "$", "¥", "￥", "€", "£", "₩", "฿", "₫", "₱", "₹", "S$", "HK$", "A$", "NT$")
UNKNOWN = ("", "-", "—", "–")


class CsvFormatError(ValueError):
    """The file is not an Ads Manager daily export we can read; the message names the line and column."""


@dataclass(frozen=True)
class CsvImport:
    """One export read whole: ``rows`` sorted by (date_start, ad_id), the summary / total lines skipped
    (1-based line numbers), the currency named in the headers (ISO 4217, "" when none)."""

    rows: list[InsightRow]
    skipped_summary_lines: tuple[int, ...] = ()
    currency: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # column -> header as written in the file

    @property
    def report(self) -> str:
        """One line for people: what was imported and skipped."""
        ads = len({r.ad_id for r in self.rows})
        skipped = len(self.skipped_summary_lines)
        text = f"{len(self.rows)} rows of {ads} ads imported"
        if skipped:
            lines = ", ".join(str(n) for n in self.skipped_summary_lines[:5]) + (", ..." if skipped > 5 else "")
            text += f"; {skipped} summary/total row(s) skipped (line {lines})"
        return text


def _normalise_header(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).replace("\ufeff", "").split()).casefold()


_LOOKUP = {_normalise_header(alias): column for column, aliases in HEADER_ALIASES.items() for alias in aliases}


def match_headers(headers: Iterable[str]) -> tuple[dict[str, str], str]:
    """Map a file's headers to columns: ({column: header}, currency). Raises CsvFormatError for a column
    given twice, two currencies, or a required column missing."""
    columns: dict[str, str] = {}
    currencies: set[str] = set()
    for header in headers:
        text = unicodedata.normalize("NFKC", header or "").replace("\ufeff", "").strip()
        column = _LOOKUP.get(_normalise_header(text))
        if column is None:
            suffix = CURRENCY_SUFFIX.match(text)
            if suffix:
                column = _LOOKUP.get(_normalise_header(suffix.group(1)))
                if column == "amount_spent":
                    currencies.add(suffix.group(2))
        if column is None:
            continue
        if column in columns:
            raise CsvFormatError(f"line 1: columns {columns[column]!r} and {header!r} both mean {column}")
        columns[column] = header
    if len(currencies) > 1:
        raise CsvFormatError(f"line 1: amounts in more than one currency ({', '.join(sorted(currencies))})")
    missing = [c for c in REQUIRED if c not in columns]
    if "day" not in columns and not {"reporting_starts", "reporting_ends"} <= set(columns):
        missing.insert(0, "reporting_starts/reporting_ends (or day)")
    if missing:
        raise CsvFormatError(f"line 1: missing column(s) {', '.join(missing)}; expected an Ads Manager daily export "
                             f"(English or Japanese headers, see services/common/ads_manager_csv.py)")
    return columns, currencies.pop() if currencies else ""


def _number_text(value: str, line: int, column: str) -> str | None:
    """The digits of a number cell (separators and currency removed); None when the cell is unknown."""
    text = unicodedata.normalize("NFKC", value).strip()
    if text in UNKNOWN:
        return None
    for symbol in CURRENCY_SYMBOLS:
        if text.startswith(symbol):
            text = text[len(symbol):].strip()
            break
        if text.endswith(symbol):
            text = text[: -len(symbol)].strip()
            break
    code = re.match(r"^([A-Z]{3})\s+(.*)$", text) or re.match(r"^(.*?)\s+([A-Z]{3})$", text)
    if code:
        text = code.group(2) if code.group(1).isalpha() else code.group(1)
    if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?", text):
        text = text.replace(",", "")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        raise CsvFormatError(f"line {line}, column {column!r}: {value!r} is not a number")
    return text


def _count(value: str, line: int, column: str) -> int | None:
    text = _number_text(value, line, column)
    if text is None:
        return None
    number = Decimal(text)
    if number != number.to_integral_value():
        raise CsvFormatError(f"line {line}, column {column!r}: {value!r} is not a whole number")
    problem = count_problem(int(number))
    if problem:
        raise CsvFormatError(f"line {line}, column {column!r}: {value!r} {problem}")
    return int(number)


def _decimal(value: str, line: int, column: str) -> Decimal | None:
    text = _number_text(value, line, column)
    if text is None:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern above admits only plain decimals
        raise CsvFormatError(f"line {line}, column {column!r}: {value!r} is not a number") from None
    problem = decimal_problem(number)
    if problem:
        raise CsvFormatError(f"line {line}, column {column!r}: {value!r} {problem}")
    return number


def _date(value: str, line: int, column: str) -> date:
    text = unicodedata.normalize("NFKC", value).strip().replace("/", "-")
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise CsvFormatError(f"line {line}, column {column!r}: {value!r} is not a YYYY-MM-DD date")


def _ranking(value: str, line: int, column: str) -> str:
    label = " ".join(unicodedata.normalize("NFKC", value).split()).lower()
    try:
        return RANKING_LABELS[label]
    except KeyError:
        raise CsvFormatError(f"line {line}, column {column!r}: {value!r} is not an Ads Manager ranking label") from None


def _id(value: str, line: int, column: str) -> str:
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,25}", text):
        raise CsvFormatError(f"line {line}, column {column!r}: {value!r} is not a numeric id")
    return text


def _is_summary(rec: dict[str, str], columns: dict[str, str]) -> bool:
    names = [rec[columns[c]].strip() for c in ("campaign_name", "adset_name", "ad_name")]
    if not names[0] and not names[1]:
        return True
    return any(TOTAL_LABEL.match(unicodedata.normalize("NFKC", n)) for n in names if n)


def read_export(lines: Iterable[str], account_id: str, conversion_action_type: str = "lead") -> CsvImport:
    """Read a whole export from CSV text lines (module docstring). Raises CsvFormatError naming line and column
    for a bad value, a row with reporting_starts != reporting_ends, an empty ad name, or the same ad twice on one
    day; nothing is returned then."""
    account = normalise_account_id(account_id)
    reader = csv.DictReader(lines)
    columns, currency = match_headers(reader.fieldnames or [])
    col = columns.get
    rows: dict[tuple[str, str, date], InsightRow] = {}
    skipped: list[int] = []
    for rec in reader:
        n = reader.line_num
        if None in rec.values() or None in rec:
            found = len([v for v in rec.values() if v is not None]) + len(rec.get(None) or [])
            raise CsvFormatError(f"line {n}: expected {len(reader.fieldnames)} columns, found {found}")
        if not any(v.strip() for v in rec.values()):
            continue  # a blank line
        if _is_summary(rec, columns):
            skipped.append(n)
            continue
        if "day" in columns:
            start = stop = _date(rec[col("day")], n, col("day"))
        else:
            start = _date(rec[col("reporting_starts")], n, col("reporting_starts"))
            stop = _date(rec[col("reporting_ends")], n, col("reporting_ends"))
        if start != stop:
            raise CsvFormatError(f"line {n}: {col('reporting_starts')} {start} != {col('reporting_ends')} {stop}; "
                                 "export daily rows (breakdown by day)")
        campaign, adset = rec[col("campaign_name")].strip(), rec[col("adset_name")].strip()
        ad = rec[col("ad_name")].strip()
        if not ad:
            raise CsvFormatError(f"line {n}, column {col('ad_name')!r}: the ad name is empty")
        link_clicks = _count(rec[col("link_clicks")], n, col("link_clicks"))
        clicks = _count(rec[col("clicks_all")], n, col("clicks_all")) if "clicks_all" in columns else link_clicks
        results = _decimal(rec[col("results")], n, col("results"))
        action_type = conversion_action_type
        if "result_indicator" in columns:
            indicator = rec[col("result_indicator")].strip()
            if indicator.startswith("actions:") and len(indicator) > len("actions:"):
                action_type = indicator[len("actions:"):]
        actions: dict[str, Decimal] = {}
        if link_clicks:
            actions["link_click"] = Decimal(link_clicks)
        if results:
            actions[action_type] = results
        rankings = {field_name: _ranking(rec[col(c)], n, col(c)) if c in columns else None
                    for c, field_name in RANKING_COLUMNS.items()}
        row = InsightRow(
            account_id=account,
            ad_id=_id(rec[col("ad_id")], n, col("ad_id")) if "ad_id" in columns
            else stable_numeric_id(account, campaign, adset, ad),
            ad_name=ad,
            adset_id=_id(rec[col("adset_id")], n, col("adset_id")) if "adset_id" in columns
            else stable_numeric_id(account, campaign, adset),
            adset_name=adset,
            campaign_id=_id(rec[col("campaign_id")], n, col("campaign_id")) if "campaign_id" in columns
            else stable_numeric_id(account, campaign),
            campaign_name=campaign,
            date_start=start,
            date_stop=stop,
            impressions=_count(rec[col("impressions")], n, col("impressions")),
            reach=_count(rec[col("reach")], n, col("reach")),
            clicks=clicks,
            inline_link_clicks=link_clicks,
            spend=_decimal(rec[col("amount_spent")], n, col("amount_spent")),
            actions=actions or None,
            **rankings,
        )
        if row.key in rows:
            raise CsvFormatError(f"line {n}: ad {campaign!r}/{adset!r}/{ad!r} appears twice on {start}")
        rows[row.key] = row
    return CsvImport(sorted(rows.values(), key=lambda r: (r.date_start, r.ad_id)), tuple(skipped), currency,
                     columns)


def parse_rows(lines: Iterable[str], account_id: str, conversion_action_type: str = "lead") -> list[InsightRow]:
    """The rows of ``read_export`` (summary rows skipped). Raises CsvFormatError."""
    return read_export(lines, account_id, conversion_action_type).rows


def load_export(path: str | Path, account_id: str, conversion_action_type: str = "lead") -> CsvImport:
    """Read an export file: UTF-8 (with or without a byte-order mark, as Ads Manager writes it) or UTF-16 with a
    byte-order mark (as spreadsheet programs save it); see ``read_export``. Raises CsvFormatError for text in
    another encoding, OSError when the file cannot be read."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    encoding = "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        with open(path, newline="", encoding=encoding) as fh:
            return read_export(fh, account_id, conversion_action_type)
    except UnicodeDecodeError as exc:
        raise CsvFormatError(f"not {encoding.upper()} text (byte {exc.start}): save the export as CSV UTF-8") from None


def load_csv(path: str | Path, account_id: str, conversion_action_type: str = "lead") -> list[InsightRow]:
    """The rows of ``load_export``. Raises CsvFormatError, OSError."""
    return load_export(path, account_id, conversion_action_type).rows


def default_account_id(path: str | Path) -> str:
    """A stable account id for a CSV file given without ``--account`` (from its file name)."""
    return stable_numeric_id("csv-account", Path(path).stem, digits=12)
