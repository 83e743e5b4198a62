"""Attribution settings and the sandbox's attribution model (issue 17 point 2): bad input is named."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.attribution import DEFAULT_ATTRIBUTION, AttributionSettings, InvalidAttribution, canonical
from services.meta_sandbox.wire import attributed


def test_settings_are_canonical_and_the_default_is_metas():
    assert DEFAULT_ATTRIBUTION == ("1d_view", "7d_click")
    assert canonical("7d_click, 1d_view,7d_click") == ("1d_view", "7d_click")
    settings = AttributionSettings.parse("", "act_1=1d_click; 2=28d_click,1d_view")
    assert settings.for_account("1") == ("1d_click",)
    assert settings.for_account("2") == ("1d_view", "28d_click")
    assert settings.for_account("3") == DEFAULT_ATTRIBUTION


@pytest.mark.parametrize("default, per_account, words", [
    ("7d_view", "", ["7d_view", "no longer returned", "2026-01-12"]),
    ("2d_click", "", ["2d_click", "not one of"]),
    ("", "act_1", ["act_1", "act_ID=window"]),
    ("", "act_x=1d_click", ["act_x"]),
    ("", "act_1=", ["at least one window"]),
])
def test_a_bad_setting_is_refused_with_what_to_change(default, per_account, words):
    with pytest.raises(InvalidAttribution) as err:
        AttributionSettings.parse(default, per_account)
    for word in words:
        assert word in str(err.value)


def test_the_sandbox_model_keeps_default_values_and_counts_more_in_longer_windows():
    assert attributed(Decimal(10), None) == Decimal(10)
    assert attributed(Decimal(10), DEFAULT_ATTRIBUTION) == Decimal(10)
    one_day, week, month = (attributed(Decimal(90), (w,)) for w in ("1d_click", "7d_click", "28d_click"))
    assert one_day < week < month
    assert attributed(Decimal(10), ("1d_click",)) == Decimal(6)  # counts stay whole numbers
