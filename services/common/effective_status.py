"""Meta's ``effective_status`` of an ad, and which of them the insights edge hides unless asked.

Values: ``facebook_business.adobjects.ad.Ad.EffectiveStatus`` (SDK 26.0.3):
ACTIVE, ADSET_PAUSED, ARCHIVED, CAMPAIGN_PAUSED, DELETED, DISAPPROVED,
IN_PROCESS, PAUSED, PENDING_BILLING_INFO, PENDING_REVIEW, PREAPPROVED,
WITH_ISSUES. Every one of them can carry delivery on some day of the
range (an ad archived today delivered yesterday; one in review after an
edit delivered before it), so the fetcher asks for all of them.

Insights leave out ads that are archived or deleted unless the request's
``filtering`` on ``ad.effective_status`` names them (issue 17; the usual
connector practice of listing every status, e.g. Airbyte's
``source-facebook-marketing`` ``ValidAdStatuses``). ``HIDDEN_BY_DEFAULT``
is what the sandbox hides when no such filter is sent.
"""

from __future__ import annotations

import json

EFFECTIVE_STATUSES = (
    "ACTIVE", "ADSET_PAUSED", "ARCHIVED", "CAMPAIGN_PAUSED", "DELETED", "DISAPPROVED", "IN_PROCESS", "PAUSED",
    "PENDING_BILLING_INFO", "PENDING_REVIEW", "PREAPPROVED", "WITH_ISSUES",
)
HIDDEN_BY_DEFAULT = frozenset({"ARCHIVED", "DELETED"})


def delivery_filtering() -> str:
    """The Graph ``filtering`` parameter (JSON) asking for ads in every effective status."""
    return json.dumps([{"field": "ad.effective_status", "operator": "IN", "value": list(EFFECTIVE_STATUSES)}],
                      separators=(",", ":"))
