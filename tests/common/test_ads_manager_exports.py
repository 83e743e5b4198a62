"""Ads Manager exports as people download them (issue 17 point 4): English and Japanese headers, separators,
currency symbols, BOM, unknown cells, summary rows; everything else refused naming line and column."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.ads_manager_csv import CsvFormatError, load_export
from tests.fidelity.exports import english_export, japanese_export


def test_an_english_export_with_bom_currency_header_separators_and_a_total_row(tmp_path):
    imported = load_export(english_export(tmp_path / "en.csv"), "act_1")
    assert imported.currency == "USD"
    assert len(imported.rows) == 6 and imported.skipped_summary_lines == (8,)
    assert "6 rows of 2 ads imported; 1 summary/total row(s) skipped (line 8)" == imported.report
    a = next(r for r in imported.rows if r.ad_name == "Video A" and r.date_start.isoformat() == "2026-03-01")
    assert (a.spend, a.impressions, a.reach, a.inline_link_clicks) == (Decimal("1234.50"), 12345, 11001, 120)
    assert a.actions == {"link_click": Decimal(120), "offsite_conversion.fb_pixel_lead": Decimal(3)}
    assert (a.quality_ranking, a.engagement_rate_ranking, a.conversion_rate_ranking) == \
        ("AVERAGE", "ABOVE_AVERAGE", "BELOW_AVERAGE_35")
    b = next(r for r in imported.rows if r.ad_name == "Video B" and r.date_start.isoformat() == "2026-03-01")
    assert b.reach is None  # "-" is unknown, never 0


def test_a_japanese_export_with_yen_amounts_and_a_total_row_first(tmp_path):
    imported = load_export(japanese_export(tmp_path / "ja.csv"), "act_1")
    assert imported.currency == "JPY" and imported.skipped_summary_lines == (2,)
    assert len(imported.rows) == 6 and {r.campaign_name for r in imported.rows} == {"春のセール"}
    a = next(r for r in imported.rows if r.ad_name == "Video A" and r.date_start.isoformat() == "2026-03-02")
    assert (a.spend, a.impressions, a.reach, a.actions["lead"]) == (Decimal(1300), 13000, 11500, Decimal(4))
    assert (a.quality_ranking, a.engagement_rate_ranking, a.conversion_rate_ranking) == \
        ("AVERAGE", "ABOVE_AVERAGE", "UNKNOWN")


def test_the_same_data_in_both_languages_gives_the_same_counts(tmp_path):
    en = load_export(english_export(tmp_path / "en.csv", bom=False), "act_1").rows
    ja = load_export(japanese_export(tmp_path / "ja.csv"), "act_1").rows
    assert sorted((r.date_start, r.ad_name, r.impressions, r.reach) for r in en) == \
        sorted((r.date_start, r.ad_name, r.impressions, r.reach) for r in ja)


@pytest.mark.parametrize("cell, column, words", [
    (5, "Ad delivery", None),  # an ignored column: anything goes
    (6, "Amount spent (USD)", ["line 8", "'Amount spent (USD)'", "'12,34.5'", "not a number"]),
    (10, "Impressions", ["line 8", "'Impressions'", "9223372036854775808", "64-bit"]),
    (11, "Reach", ["line 8", "'Reach'", "'1.5'", "whole number"]),
    (0, "Reporting starts", ["line 8", "'Reporting starts'", "'03/04/2026'", "YYYY-MM-DD"]),
    (13, "Quality ranking", ["line 8", "'Quality ranking'", "'Great'", "ranking label"]),
])
def test_anything_else_is_refused_naming_line_and_column_and_nothing_is_imported(tmp_path, cell, column, words):
    good = ["2026-03-04", "2026-03-04", "Spring sale", "Spring sale / Broad", "Video C", "active", "$1.00", "",
            "", "1", "100", "90", "", "Average", "Average", "Average"]
    bad = list(good)
    bad[cell] = {6: "12,34.5", 10: str(2**63), 11: "1.5", 0: "03/04/2026", 13: "Great", 5: "weird"}[cell]
    path = english_export(tmp_path / "bad.csv", extra_rows=[bad])
    if words is None:
        assert len(load_export(path, "act_1").rows) == 7
        return
    with pytest.raises(CsvFormatError) as err:
        load_export(path, "act_1")
    for word in words:
        assert word in str(err.value), str(err.value)


def test_a_file_that_is_not_an_export_names_the_missing_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Date,Spend\n2026-03-01,1\n", encoding="utf-8")
    with pytest.raises(CsvFormatError, match="line 1: missing column.*campaign_name"):
        load_export(path, "act_1")
