"""The provider console's Vietnamese catalogue has every message of its code and templates, compiled."""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "provider/translations/vi/LC_MESSAGES/messages.po"


def test_provider_catalogue_is_complete_and_compiled():
    # the same mapping as provider/babel.cfg, relative to provider/
    found = extract_from_dir(str(ROOT / "provider"), method_map=[("**.py", "python"),
                                                                 ("templates/**.html", "jinja2")])
    wanted = {msg[2] if isinstance(msg[2], str) else msg[2][0] for msg in found}
    assert len(wanted) > 50, "extraction found no messages"
    with open(PO, "rb") as fh:
        translated = {m.id: m.string for m in read_po(fh) if m.id}
    missing = sorted(m for m in wanted if not translated.get(m))
    assert not missing, f"add these to {PO} and recompile the .mo: {missing}"
    with open(PO.with_suffix(".mo"), "rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    assert compiled == translated, "provider messages.mo is stale: pybabel compile -f -d provider/translations"
