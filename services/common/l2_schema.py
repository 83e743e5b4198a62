"""One schema check for every document read from MongoDB (issue 16, DESIGN.md R11).

``check(collection, doc)`` returns None when ``doc`` is a valid document of
``collection`` (``insights``, ``freshness``, ``accounts``, ``scores``,
``tokens``) and otherwise a short reason naming the field ("row.impressions:
Input should be a valid integer"). Readers quarantine what fails
(``quarantine_record``), never serve it, and have it rebuilt from the source
(the days re-fetched, the ads rescored, the account version recomputed).

The shapes are the ones the writers produce (cache_gateway/l2_store.py,
row_document.py, rescoring.py; meta_fetcher/token_vault.py). Strict types:
a count is a BSON integer in the int64 range and not negative (``true``,
``"5"`` or ``5.0`` fail); money and action values are non-negative decimal
*strings* exactly as Meta sends them ("0.1" passes, the double 0.1, "NaN",
"-5" and "1e3" fail); dates are ISO ``YYYY-MM-DD`` strings; timestamps are
BSON dates. Fields nobody reads are ignored. Validation uses pydantic v2
in strict mode.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictBytes, StrictInt, StrictStr, \
    ValidationError, model_validator

from services.common.pb.adfatigue.v1 import fatigue_pb2
from services.common.telemetry import meter

INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"^\d{1,30}(\.\d{1,30})?$")
_DIGITS = re.compile(r"^\d{1,20}$")

#: documents quarantined, by collection (OpenTelemetry counter, exported with the process's other metrics)
quarantined = meter(__name__).create_counter(
    "adfatigue.l2.quarantined", unit="{document}",
    description="documents read from MongoDB that failed the schema check and were moved to quarantine")


def _decimal_string(value: str) -> str:
    if not _DECIMAL.match(value):
        raise ValueError("must be a non-negative decimal string such as \"12.34\"")
    return value


def _iso_date(value: str) -> str:
    try:
        if date.fromisoformat(value).isoformat() != value:
            raise ValueError
    except ValueError:
        raise ValueError("must be an ISO date YYYY-MM-DD") from None
    return value


def _digits(value: str) -> str:
    if not _DIGITS.match(value):
        raise ValueError("must be a numeric id")
    return value


def _zone(value: str) -> str:
    if value:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Europe/Paris") from None
    return value


Count = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]
DecimalString = Annotated[StrictStr, AfterValidator(_decimal_string)]
IsoDate = Annotated[StrictStr, AfterValidator(_iso_date)]
NumericId = Annotated[StrictStr, AfterValidator(_digits)]


class _Doc(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class RowBody(_Doc):
    """``insights.row`` (row_document.encode_row)."""

    ad_name: StrictStr | None = None
    adset_id: StrictStr | None = None
    adset_name: StrictStr | None = None
    campaign_id: StrictStr | None = None
    campaign_name: StrictStr | None = None
    quality_ranking: StrictStr | None = None
    engagement_rate_ranking: StrictStr | None = None
    conversion_rate_ranking: StrictStr | None = None
    impressions: Count | None = None
    reach: Count | None = None
    clicks: Count | None = None
    inline_link_clicks: Count | None = None
    reach_cum: Count | None = None
    spend: DecimalString | None = None
    actions: dict[StrictStr, DecimalString] | None = None
    attribution: StrictStr | None = None  # "1d_view,7d_click" (services/common/attribution.py)


class InsightDoc(_Doc):
    id: StrictStr = Field(alias="_id")
    account_id: NumericId
    ad_id: NumericId
    date: IsoDate
    row: RowBody
    content_hash: StrictStr
    fetched_at: datetime
    version: Count
    deleted: StrictBool = False
    #: why a tombstone was written (InsightsStore.remove_rows); rows leave L2 only with a reason
    deleted_reason: StrictStr | None = None

    @model_validator(mode="after")
    def _key(self):
        if self.id != f"{self.account_id}:{self.ad_id}:{self.date}":
            raise ValueError("_id does not match account_id:ad_id:date")
        if self.deleted and not self.deleted_reason:
            raise ValueError("deleted is true without a deleted_reason (rows are removed only with a reason)")
        return self


class FreshnessDoc(_Doc):
    account_id: NumericId
    date: IsoDate
    fetched_at: datetime
    attribution: StrictStr = ""  # the setting the day was last fetched with
    #: insights documents of the day (tombstones too) when it was last marked fetched; a read finding fewer
    #: re-fetches the day (l2_store). Absent in records written before it existed: not checked.
    row_count: Count | None = None


class AccountDoc(_Doc):
    id: StrictStr = Field(alias="_id")
    version: Count
    seq: Count
    timezone: Annotated[StrictStr, AfterValidator(_zone)] = ""
    currency: StrictStr = ""
    name: StrictStr = ""
    claimed_at: datetime | None = None

    @model_validator(mode="after")
    def _claim(self):
        if self.seq < self.version:
            raise ValueError("seq (last claimed version) is below version (last committed)")
        return self


class ScoreDoc(_Doc):
    id: StrictStr = Field(alias="_id")
    account_id: NumericId
    ad_id: NumericId
    insights_version: Count
    result: StrictBytes
    first: IsoDate
    last: IsoDate

    @model_validator(mode="after")
    def _result(self):
        if self.first > self.last:
            raise ValueError("first is after last")
        try:
            result = fatigue_pb2.FatigueResult.FromString(self.result)
        except Exception:  # protobuf's DecodeError and friends
            raise ValueError("result is not a serialized FatigueResult") from None
        if result.ad_id != self.ad_id or result.insights_version != self.insights_version:
            raise ValueError("result belongs to another ad or version")
        return self


class TokenDoc(_Doc):
    """``tokens`` (meta_fetcher/token_vault.py); the ciphertext itself is checked by AES-GCM on decrypt."""

    id: NumericId = Field(alias="_id")
    kid: StrictStr
    nonce: Annotated[StrictBytes, Field(min_length=12, max_length=12)]
    ciphertext: Annotated[StrictBytes, Field(min_length=16)]
    generation: Count = 0
    status: Literal["valid", "invalid"] = "valid"
    refresh_due_at: datetime | None = None
    updated_at: datetime | None = None


SCHEMAS: dict[str, type[_Doc]] = {
    "insights": InsightDoc, "freshness": FreshnessDoc, "accounts": AccountDoc, "scores": ScoreDoc,
    "tokens": TokenDoc,
}


def check(collection: str, doc: Any) -> str | None:
    """None if ``doc`` is a valid document of ``collection``, else the reason (field: problem)."""
    if not isinstance(doc, dict):
        return "not a document"
    try:
        SCHEMAS[collection].model_validate(_plain(doc))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return None


def _plain(doc: dict) -> dict:
    """BSON Binary is a bytes subclass; strict mode wants exact bytes."""
    return {k: (bytes(v) if isinstance(v, bytes) and type(v) is not bytes else v) for k, v in doc.items()}


def quarantine_record(collection: str, doc: dict, reason: str) -> dict:
    """The ``quarantine`` document for ``doc`` (keyed by collection and id, so a re-quarantine replaces it)."""
    quarantined.add(1, {"collection": collection})
    return {"_id": f"{collection}:{doc.get('_id')}", "collection": collection, "reason": reason,
            "quarantined_at": datetime.now(timezone.utc), "document": doc}
