"""README's settings table is the models' (generated, checked here), and the short table names real variables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from services.common.settings import env_name
from services.common.settings.table import BEGIN, END

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from gen_settings_table import SERVICE_SETTINGS  # noqa: E402


def declared() -> set[str]:
    return {env_name(f) for model in SERVICE_SETTINGS.values() for f in model.model_fields.values()}


def test_the_readme_table_is_generated_from_the_models():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_settings_table.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index(BEGIN):readme.index(END)]
    assert set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.MULTILINE)) == declared()


def test_every_variable_the_rest_of_the_readme_tables_name_is_a_setting():
    readme = (ROOT / "README.md").read_text()
    outside = readme[:readme.index(BEGIN)] + readme[readme.index(END):]
    named = set()
    for line in outside.splitlines():
        if line.startswith("| `"):
            named |= set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", line.split("|")[1]))
    assert named and named <= declared(), sorted(named - declared())
