"""Where the real dataset lives (shipped in data/), and what to do when it is missing (a failure in CI, a skip locally)."""

import os
from pathlib import Path

import pytest

REAL_CSV = Path(__file__).resolve().parent.parent / "data" / "meta_ads_daily_account_a.csv"  # the shipped sample account


def require_real_csv() -> Path:
    if REAL_CSV.is_file():
        return REAL_CSV
    message = f"the real dataset {REAL_CSV} is missing"
    if os.environ.get("CI"):
        pytest.fail(message + " (required in CI)")
    pytest.skip(message)
