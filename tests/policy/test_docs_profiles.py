"""docs/profiles.md states every preset as the code defines it."""
from __future__ import annotations

from pathlib import Path

from resolver.policy.profiles import CATEGORIES, PRESETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"


def test_preset_table_matches_the_code():
    text = DOC.read_text(encoding="utf-8")
    for name, p in PRESETS.items():
        cats = ", ".join(c for c in CATEGORIES if c in p.categories)
        row = (f"| `{name}` | {cats} | {'on' if p.safe_search else 'off'} | {p.youtube} | "
               f"{'on' if p.bypass_prevention else 'off'} |")
        assert row in text, f"docs/profiles.md: update the row of preset {name}: {row}"
