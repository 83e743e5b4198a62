"""Checks of an ``adfatigue.v1.FatigueConfig`` shared by the gateway (GetFatigue) and the engine (ScoreAds).

A config the engine cannot honour is refused (INVALID_ARGUMENT) rather than scored as something else:
an ``audience_type`` number outside the enum (it would score as prospecting) or a
``conversion_action_type`` that is not a Graph API ``action_type``.
"""

from __future__ import annotations

import re

from services.common.pb.adfatigue.v1 import fatigue_pb2

#: A Graph API ``action_type``: lowercase words joined by ``_`` / ``.`` / ``:``, e.g. ``lead``,
#: ``offsite_conversion.fb_pixel_lead``, ``offsite_conversion.custom.1234567890`` (Graph API ``actions``).
ACTION_TYPE = re.compile(r"[a-z0-9]+(?:[_.:][a-z0-9]+)*")
ACTION_TYPE_MAX = 100


def config_problem(config: fatigue_pb2.FatigueConfig) -> str | None:
    """What is wrong with ``config`` (a message naming the field and the value), or None when it is valid."""
    if config.audience_type not in fatigue_pb2.AudienceType.values():
        names = ", ".join(fatigue_pb2.AudienceType.keys())
        return f"config.audience_type {config.audience_type} is not one of {names}"
    action = config.conversion_action_type
    if action and (len(action) > ACTION_TYPE_MAX or not ACTION_TYPE.fullmatch(action)):
        shown = action if len(action) <= 60 else action[:60] + "…"
        return (f"config.conversion_action_type {shown!r} is not a Graph API action_type (e.g. 'lead', "
                f"'offsite_conversion.fb_pixel_lead'; at most {ACTION_TYPE_MAX} lowercase letters, digits, "
                "'_', '.', ':')")
    return None
