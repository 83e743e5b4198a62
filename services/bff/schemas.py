"""Response shapes of the v1 API (OpenAPI documentation; the page model is built in ``page_model.py``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Account(BaseModel):
    id: str = Field(description='"act_<digits>"')
    name: str = Field(description="Graph API name, or the id when unknown")
    currency: str = Field(description="ISO 4217; empty until the account was first read")
    timezone: str = Field(description="IANA time zone of the account; dates are days there")
    version: int = Field(description="account insights version (0: nothing stored)")
    known: bool = Field(description="false: you may read it but it was never read yet")


class Accounts(BaseModel):
    accounts: list[Account]


class Session(BaseModel):
    user: str
    accounts: list[str] = Field(description='accounts you may read ("*" = every account)')
    operator: bool = Field(description="may force a refresh")
    csrf_token: str = Field(description="send as X-CSRF-Token on POST requests")


class Series(BaseModel):
    first_day: str = Field(description="YYYY-MM-DD of index 0; one entry per calendar day up to the last delivery day")
    impressions: list[int | None]
    link_ctr_pct: list[float | None] = Field(description="inline_link_clicks / impressions x 100")
    cpm: list[float | None] = Field(description="spend / impressions x 1000, account currency")
    frequency: list[float | None] | None = Field(description="impressions / reach of the day; null: reach unknown")


class Component(BaseModel):
    name: str = Field(description="FATIGUE_SPEC.md component: ctr_decay, frequency, reach_saturation, "
                                  "cpm_inflation, cpa_inflation, ranking_drop")
    label: str
    available: bool
    score: float | None = Field(description="0-100")
    weight: float
    raw_value: float | None
    unavailable_reason: str
    before: float | None = Field(description="baseline window value (fraction, or currency for CPM/CPA)")
    after: float | None = Field(description="recent window value")
    before_text: str | None = Field(description='human units, e.g. "3.71 %", "12.60 MYR"')
    after_text: str | None
    text: str = Field(description='in words, as `adfatigue report` says it, e.g. "link CTR 3.71 % → 1.86 % (-50 %)"')


class Ad(BaseModel):
    ad_id: str
    ad_name: str
    adset_id: str
    adset_name: str
    campaign_id: str
    campaign_name: str
    level: str = Field(description="critical, warning, caution, healthy or insufficient_data")
    score: float | None = Field(description="0-100 (FATIGUE_SPEC.md v1.1)")
    components: list[Component]
    reasons: list[str] = Field(description="the top components in words with numbers")
    days_to_critical: int | None = Field(description="forecast; 0 = critical now; null = no crossing within 30 days")
    forecast_reason: str
    spend: str = Field(description="decimal string, account currency, over the range")
    impressions: int
    link_clicks: int
    link_ctr_pct: float | None
    delivery_days: int
    scored_version: int | None = Field(description="insights version the score was computed from")
    series: Series


class Freshness(BaseModel):
    status: str = Field(description="fresh, stale_revalidating or stale_upstream_error")
    reason: str
    as_of: str | None = Field(description="oldest fetch among the days (UTC, ISO 8601)")
    as_of_local: str | None = Field(description="the same in the account's time zone, YYYY-MM-DD HH:MM")
    classes: dict[str, dict] = Field(description="per freshness class (final, provisional, partial): days, due, oldest")


class Summary(BaseModel):
    ads: int
    per_level: dict[str, int]
    spend: str
    spend_at_risk: str = Field(description="spend of warning and critical ads, decimal string")


class PageModel(BaseModel):
    account: dict[str, str]
    range: dict[str, str]
    version: int = Field(description="every number in this answer is from this version")
    generated_at: str
    freshness: Freshness
    summary: Summary
    ads: list[Ad] = Field(description="highest score first")
    stored_days: dict[str, str] | None = Field(
        default=None, description="only when no ad has a row in the range: the first and last day (since, until) "
                                  "with rows stored for the account, so the page can offer them")


class RefreshResult(BaseModel):
    version: int
    rows_changed: int
    upstream_calls: int
    fetched_ranges: list[dict[str, str]]
