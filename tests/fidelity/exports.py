"""Small Ads Manager exports the tests build, one per format people download (issue 17 point 4).

Each has two ads over three days, one ad with an unknown reach ("-"), numbers
with thousands separators and currency symbols, and one summary / total row.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

ENGLISH_HEADERS = ["Reporting starts", "Reporting ends", "Campaign name", "Ad set name", "Ad name", "Ad delivery",
                   "Amount spent (USD)", "Results", "Result indicator", "Link clicks", "Impressions", "Reach",
                   "CPM (cost per 1,000 impressions) (USD)", "Quality ranking", "Engagement rate ranking",
                   "Conversion rate ranking"]
JAPANESE_HEADERS = ["日", "キャンペーン名", "広告セット名", "広告名", "消化金額 (JPY)", "結果", "リンクのクリック",
                    "インプレッション", "リーチ", "品質ランキング", "エンゲージメント率ランキング",
                    "コンバージョン率ランキング"]

#: (day, ad, spend, results, link clicks, impressions, reach) per data row; reach None = "-" (unknown).
ROWS = [
    ("2026-03-01", "Video A", "1,234.50", "3", "120", "12,345", "11,001"),
    ("2026-03-01", "Video B", "98.10", "", "7", "1,002", None),
    ("2026-03-02", "Video A", "1,300.00", "4", "131", "13,000", "11,500"),
    ("2026-03-02", "Video B", "101.00", "1", "9", "1,100", "1,000"),
    ("2026-03-03", "Video A", "1,280.25", "2", "118", "12,800", "11,250"),
    ("2026-03-03", "Video B", "99.99", "", "6", "990", "950"),
]


def english_export(path: Path, *, bom: bool = True, extra_rows: list[list[str]] | None = None) -> Path:
    """Ads Manager's English export: BOM, "$1,234.50" amounts, a "Total" line at the end."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(ENGLISH_HEADERS)
    for day, ad, spend, results, clicks, impressions, reach in ROWS:
        writer.writerow([day, day, "Spring sale", "Spring sale / Broad", ad, "active", f"${spend}", results,
                         "actions:offsite_conversion.fb_pixel_lead" if results else "", clicks, impressions,
                         reach if reach is not None else "-", "12.34", "Average", "Above average",
                         "Below average - Bottom 35% of ads"])
    for row in extra_rows or []:
        writer.writerow(row)
    writer.writerow(["2026-03-01", "2026-03-03", "", "", "Results from 2 ads", "", "$4,113.84", "10", "", "391",
                     "41,237", "35,000", "", "", "", ""])
    path.write_text(("\ufeff" if bom else "") + out.getvalue(), encoding="utf-8")
    return path


def japanese_export(path: Path) -> Path:
    """Ads Manager's Japanese export: "¥" amounts with separators, a "合計" line first (blank names)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(JAPANESE_HEADERS)
    writer.writerow(["", "", "", "合計", "¥4,114", "10", "391", "41,237", "35,000", "", "", ""])
    for day, ad, spend, results, clicks, impressions, reach in ROWS:
        yen = spend.split(".")[0]
        writer.writerow([day, "春のセール", "春のセール / 全国", ad, f"¥{yen}", results, clicks, impressions,
                         reach if reach is not None else "-", "平均", "平均以上", "-"])
    path.write_text("\ufeff" + out.getvalue(), encoding="utf-8")
    return path
