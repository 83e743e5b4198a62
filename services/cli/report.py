"""``adfatigue report``: what to act on, per ad — in a table, JSON, CSV or Markdown.

``report_lines`` turns a ``GetFatigueResponse`` into one ``AdLine`` per ad
(campaign / ad set / ad, level, score, spend in the range, days to critical,
every available component's values before -> after in human units, the
reason when there is no score); ``--level`` filters it, ``--sort`` orders it.
The renderers:

- ``table``: a ``rich`` table; colour only on a terminal and never with
  ``NO_COLOR`` set (rich honours it); reasons wrap, nothing is cut.
- ``json``: the ``GetFatigueResponse`` in protobuf's JSON mapping with the
  proto field names (so int64 values are strings, as the mapping says),
  every field present, and account ids in full (``act_<digits>``).
- ``csv``: one row per ad, numbers as numbers (spreadsheets), UTF-8, header first.
- ``markdown``: the table's columns as a GitHub pipe table.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.cli.terminal import invoked_as
from services.common.fatigue_text import LEVEL_ORDER, component_text, level_name, main_reasons, money
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, insights_pb2

FORMATS = ("table", "json", "csv", "markdown")
SORTS = ("level", "score", "spend", "days_to_critical", "name")
LEVELS = ("critical", "warning", "caution", "healthy", "insufficient_data")
LEVEL_STYLE = {"critical": "bold red", "warning": "dark_orange", "caution": "yellow", "healthy": "green",
               "insufficient_data": "dim"}
AT_STAKE = ("warning", "critical")


@dataclass
class AdLine:
    campaign_name: str
    adset_name: str
    ad_name: str
    ad_id: str
    level: str
    score: float | None
    spend: Decimal | None
    days_to_critical: int | None
    signals: list[str] = field(default_factory=list)  # available components, largest contribution first
    reason: str = ""  # why there is no score, or why there is no forecast
    values: dict[str, float] = field(default_factory=dict)  # the raw before/after numbers (csv)


def _values(result) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in result.components:
        d = c.details
        if c.name == "ctr_decay" and "ctr_baseline" in d:
            out["link_ctr_baseline_pct"], out["link_ctr_recent_pct"] = d["ctr_baseline"] * 100, d["ctr_recent"] * 100
        elif c.name == "cpm_inflation" and "cpm_baseline" in d:
            out["cpm_baseline"], out["cpm_recent"] = d["cpm_baseline"], d["cpm_recent"]
        elif c.name == "cpa_inflation" and "cpa_baseline" in d:
            out["cpa_baseline"] = d["cpa_baseline"]
            if "cpa_recent" in d:
                out["cpa_recent"] = d["cpa_recent"]
        elif c.name == "frequency" and c.available and c.HasField("raw_value"):
            out["frequency"] = c.raw_value
        elif c.name == "ranking_drop" and c.available and c.HasField("raw_value"):
            out["ranking_steps_lost"] = c.raw_value
    return out


def report_lines(reply: gw.GetFatigueResponse, levels: list[str] | None = None, sort: str = "level") -> list[AdLine]:
    """One line per ad of ``reply``, only ``levels`` (all when empty), ordered by ``sort`` (one of ``SORTS``)."""
    currency = reply.account_currency
    lines = []
    for r in reply.results:
        scored = r.HasField("score")
        available = [c for c in r.components if c.available and c.HasField("score")]
        available.sort(key=lambda c: c.score * c.weight, reverse=True)
        dtc = r.forecast.days_to_critical if r.forecast.HasField("days_to_critical") else None
        reason = r.insufficient_reason if not scored else (r.forecast.reason if dtc is None else "")
        signals = [component_text(c, currency) for c in available] if scored else []
        if scored and r.meta_parity_floor_applied:
            signals.append(main_reasons(r, currency)[-1])
        lines.append(AdLine(r.campaign_name, r.adset_name, r.ad_name, r.ad_id, level_name(r.level),
                            round(r.score, 2) if scored else None, Decimal(r.spend) if r.HasField("spend") else None,
                            dtc, signals, reason, _values(r)))
    if levels:
        lines = [x for x in lines if x.level in levels]
    name = lambda x: (x.campaign_name, x.adset_name, x.ad_name, x.ad_id)  # noqa: E731
    keys = {
        "level": lambda x: (LEVEL_ORDER.get(x.level, 9), -(x.score or 0), name(x)),
        "score": lambda x: (x.score is None, -(x.score or 0), name(x)),
        "spend": lambda x: (x.spend is None, -(x.spend or 0), name(x)),
        "days_to_critical": lambda x: (x.days_to_critical is None, x.days_to_critical or 0, name(x)),
        "name": name,
    }
    return sorted(lines, key=keys[sort])


def _header(reply: gw.GetFatigueResponse, since: str, until: str) -> str:
    status = insights_pb2.DataStatus.Name(reply.freshness.status) if reply.freshness.status else "FRESH"
    text = f"act_{reply.account_id}  {since} … {until}  version {reply.version}  data {status}"
    return text + (f" ({reply.freshness.reason})" if reply.freshness.reason else "")


def summary(reply: gw.GetFatigueResponse, lines: list[AdLine]) -> str:
    """``55 ads, 15 scored; spend 1,234.56 MYR, on warning + critical ads 567.89 MYR (46 %)``."""
    currency = reply.account_currency
    scored = sum(1 for x in lines if x.score is not None)
    total = sum((x.spend for x in lines if x.spend is not None), Decimal(0))
    stake = sum((x.spend for x in lines if x.spend is not None and x.level in AT_STAKE), Decimal(0))
    share = f" ({stake / total * 100:.0f} %)" if total else ""
    return (f"{len(lines)} ads, {scored} scored, {len(lines) - scored} insufficient_data; "
            f"spend {money(float(total), currency)}, on warning + critical ads {money(float(stake), currency)}{share}")


def empty_hint(reply: gw.GetFatigueResponse, since: str, until: str) -> str:
    """Why an answer has no ad, and where the account's data lies (``stored_days``)."""
    account = f"act_{reply.account_id}"
    text = f"no ad of {account} has a row in {since} … {until}"
    if reply.HasField("stored_days") and reply.stored_days.since:
        s, u = reply.stored_days.since, reply.stored_days.until
        return (f"{text}; the platform holds {account}'s days {s} … {u}: try "
                f"{invoked_as()} report --account {account} --since {s} --until {u}")
    return f"{text}, and the platform holds no day of {account} yet (nothing was delivered or fetched)"


def _spend_text(x: AdLine, currency: str) -> str:
    return money(float(x.spend), currency) if x.spend is not None else "-"


def _score_text(x: AdLine) -> str:
    return f"{x.score:.2f}" if x.score is not None else "-"


def common_forecast_reason(lines: list[AdLine]) -> tuple[str, int]:
    """The reason most scored ads have no forecast (e.g. no cumulative reach), and on how many ads."""
    counts = Counter(x.reason for x in lines if x.score is not None and x.days_to_critical is None and x.reason)
    return counts.most_common(1)[0] if counts else ("", 0)


def _details_text(x: AdLine, said_once: str = "") -> str:
    parts = list(x.signals)
    if x.reason and x.reason != said_once:
        parts.append(x.reason if x.score is None else f"no forecast: {x.reason}")
    return "; ".join(parts)


def _footer(reply: gw.GetFatigueResponse, lines: list[AdLine]) -> tuple[list[str], str]:
    """Closing lines (forecast reason said once when shared by several ads, then the summary); that reason."""
    reason, count = common_forecast_reason(lines)
    if count < 2:
        reason = ""
    out = [f"no forecast of days to critical for {count} scored ads: {reason}"] if reason else []
    return out + [summary(reply, lines)], reason


def render_table(reply: gw.GetFatigueResponse, lines: list[AdLine], since: str, until: str,
                 console: Console) -> None:
    """Print the report as a rich table on ``console`` (colour decided by the console: terminal, NO_COLOR)."""
    console.print(_header(reply, since, until), highlight=False)
    if not reply.results:
        # soft_wrap: not broken at the terminal's width (the hint ends with a command to paste)
        console.print(empty_hint(reply, since, until), highlight=False, soft_wrap=True)
        return
    currency = reply.account_currency
    footer, said_once = _footer(reply, lines)
    table = Table(show_lines=False, expand=False, pad_edge=False)
    table.add_column("level", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("campaign / ad set / ad", overflow="fold", ratio=2)
    table.add_column(f"spend{' ' + currency if currency else ''}", justify="right", no_wrap=True)
    table.add_column("days to critical", justify="right")
    table.add_column("before → after / reason", overflow="fold", ratio=4)
    for x in lines:
        table.add_row(Text(x.level, style=LEVEL_STYLE.get(x.level, "")), _score_text(x),
                      f"{x.campaign_name} / {x.adset_name.removeprefix(x.campaign_name + ' / ')} / {x.ad_name}",
                      money(float(x.spend)) if x.spend is not None else "-",
                      str(x.days_to_critical) if x.days_to_critical is not None else "-",
                      _details_text(x, said_once))
    console.print(table)
    for line in footer:
        console.print(line, highlight=False)


def render_markdown(reply: gw.GetFatigueResponse, lines: list[AdLine], since: str, until: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")
    out = [f"**{cell(_header(reply, since, until))}**", ""]
    if not reply.results:
        return "\n".join(out + [cell(empty_hint(reply, since, until))])
    currency = reply.account_currency
    footer, said_once = _footer(reply, lines)
    out += ["| level | score | campaign | ad set | ad | spend | days to critical | before → after / reason |",
            "|---|---:|---|---|---|---:|---:|---|"]
    for x in lines:
        dtc = str(x.days_to_critical) if x.days_to_critical is not None else "-"
        out.append("| " + " | ".join(cell(v) for v in (
            x.level, _score_text(x), x.campaign_name, x.adset_name, x.ad_name, _spend_text(x, currency), dtc,
            _details_text(x, said_once))) + " |")
    return "\n".join(out + [""] + [cell(line) + "  " for line in footer])


CSV_VALUES = ("link_ctr_baseline_pct", "link_ctr_recent_pct", "cpm_baseline", "cpm_recent", "cpa_baseline",
              "cpa_recent", "frequency", "ranking_steps_lost")


def render_csv(reply: gw.GetFatigueResponse, lines: list[AdLine]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["account_id", "campaign_name", "adset_name", "ad_name", "ad_id", "level", "score", "spend",
                     "account_currency", "days_to_critical", *CSV_VALUES, "signals", "reason"])
    for x in lines:
        writer.writerow([f"act_{reply.account_id}", x.campaign_name, x.adset_name, x.ad_name, x.ad_id, x.level,
                         "" if x.score is None else f"{x.score:.2f}", "" if x.spend is None else str(x.spend),
                         reply.account_currency, "" if x.days_to_critical is None else x.days_to_critical,
                         *("" if x.values.get(k) is None else round(x.values[k], 4) for k in CSV_VALUES),
                         "; ".join(x.signals), x.reason])
    return buf.getvalue()


def _full_ids(message: dict) -> dict:
    if message.get("account_id") and not str(message["account_id"]).startswith("act_"):
        message["account_id"] = f"act_{message['account_id']}"
    return message


def render_json(reply: gw.GetFatigueResponse, lines: list[AdLine] | None = None) -> str:
    """Protobuf JSON mapping (proto field names, all fields), ``act_`` ids; only the results in ``lines``, in order."""
    shown = reply
    if lines is not None:
        by_id = {r.ad_id: r for r in reply.results}
        shown = gw.GetFatigueResponse()
        shown.CopyFrom(reply)
        del shown.results[:]
        shown.results.extend(by_id[x.ad_id] for x in lines)
    data = MessageToDict(shown, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    _full_ids(data)
    for result in data.get("results", []):
        _full_ids(result)
    return json.dumps(data, indent=2, ensure_ascii=False)
