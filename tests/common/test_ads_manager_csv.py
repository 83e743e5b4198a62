"""Ads Manager CSV exports: good files load, bad ones fail with a message naming the line and the column."""

import pytest

from services.common.ads_manager_csv import CsvFormatError, load_csv

HEADER = ("reporting_starts,reporting_ends,campaign_name,adset_name,ad_name,amount_spent,results,link_clicks,"
          "impressions,reach,cpm,quality_ranking,engagement_ranking,conversion_ranking")
GOOD = "2026-03-01,2026-03-01,C1,C1 / S1,Ad 1,12.50,3,40,1000,900,12.5,Average,-,Below average - Bottom 35% of ads"


def write(tmp_path, text: str, encoding="utf-8"):
    path = tmp_path / "export.csv"
    path.write_text(text, encoding=encoding)
    return path


def test_a_good_row_maps_to_graph_fields(tmp_path):
    (row,) = load_csv(write(tmp_path, f"{HEADER}\n{GOOD}\n"), "act_1")
    assert (row.impressions, row.inline_link_clicks, str(row.spend)) == (1000, 40, "12.50")
    assert row.actions == {"link_click": 40, "lead": 3}
    assert (row.quality_ranking, row.engagement_rate_ranking, row.conversion_rate_ranking) == \
        ("AVERAGE", "UNKNOWN", "BELOW_AVERAGE_35")


def test_utf16_exports_load_like_utf8(tmp_path):
    assert load_csv(write(tmp_path, f"{HEADER}\n{GOOD}\n", "utf-16"), "act_1") == \
        load_csv(write(tmp_path, f"{HEADER}\n{GOOD}\n"), "act_1")


@pytest.mark.parametrize("text, words", [
    (f"{HEADER}\n2026-03-01,2026-03-01,short row\n", "line 2: expected"),
    (f"{HEADER}\n{GOOD},extra\n", "line 2: expected"),
    ("a,b\n1,2\n", "missing column"),
    (f"{HEADER}\n{GOOD.replace('12.50', 'abc')}\n", "amount_spent"),
    (f"{HEADER}\n{GOOD.replace('2026-03-01,2026-03-01', '2026-03-01,2026-03-02')}\n", "daily rows"),
    (f"{HEADER}\n{GOOD}\n{GOOD}\n", "twice"),
])
def test_bad_files_name_the_problem(tmp_path, text, words):
    with pytest.raises(CsvFormatError, match=words):
        load_csv(write(tmp_path, text), "act_1")


def test_binary_garbage_is_a_format_error(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"reporting_starts\x80\x81\x82")
    with pytest.raises(CsvFormatError, match="UTF-8"):
        load_csv(path, "act_1")
