"""Rebuild tests/data from the shared data set (../../../shared/data or $HEARTH_SHARED_DATA).

Small files are copied as they are; large lists are cut to slices: the header (the comment lines before the
first entry) and the first entries. A list published in several syntaxes is cut to the same names in each, so
the tests that compare syntaxes still compare like with like. Licence files are copied beside their lists.

    python3 tests/data/make_slices.py [SHARED_DATA_DIR]
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

COPY = [  # copied whole (small)
    "hagezi/LICENSE", *(f"hagezi/native.tiktok.{s}" for s in ("adblock.txt", "domains.txt", "hosts",
                                                                "onlydomains.txt", "wildcard.txt")),
    *(f"hagezi/doh-vpn-proxy-bypass.{s}" for s in ("adblock.txt", "onlydomains.txt", "wildcard.txt")),
    *(f"hagezi/nosafesearch.{s}" for s in ("adblock.txt", "onlydomains.txt", "wildcard.txt")),
    "blocklistproject/LICENSE", "blocklistproject/tiktok.adblock.txt", "blocklistproject/tiktok.domains.txt",
    "blocklistproject/tiktok.hosts",
    "oisd/LICENSE", "oisd/oisd_nsfw_small.adblock.txt",
    "stevenblack/LICENSE",
    "safesearch/LICENSE", *(f"safesearch/{e}.txt" for e in ("bing", "duckduckgo", "ecosia", "google", "pixabay",
                                                            "yandex", "youtube")),
    "ut1/LICENSE.pdf", "ut1/adult.very_restrictive_expression", "ut1/drogue.domains", "ut1/child.domains",
    "services/LICENSE", "services/blocked_services.json",
    "popular/LICENSE-NOTE.md", "hostsvn/LICENSE",
    "dns-wire/dnslib-LICENSE", "dns-wire/dnslib-test-packets.jsonl", "dns-wire/c-ares-LICENSE.md",
]
HEAD = {  # file -> entries kept (after its header)
    "stevenblack/hosts": 2500,
    "stevenblack/porn-only.hosts": 1500,
    "blocklistproject/facebook.hosts": 1500,
    "hagezi/tif.medium.onlydomains.txt": 4000,
    "ut1/gambling.domains": 2000,
    "popular/umbrella-top-80k.txt": 20000,
    "hostsvn/gambling-VN.domains.txt": 300,
    "hostsvn/adult-VN.domains.txt": 200,
}
RENAME = {"popular/umbrella-top-80k.txt": "popular/umbrella-top-20k.txt"}
SHORT_RECORDS = {"dns-wire/c-ares-fuzzinput.jsonl": 20000}  # file -> longest record kept (characters)
SAME_NAMES = {  # the first file's first N names, and those names in the others
    ("hagezi/gambling.onlydomains.txt", "hagezi/gambling.adblock.txt"): 3000,
    ("oisd/oisd_small.adblock.txt", "oisd/oisd_small.domainswild.txt", "oisd/oisd_small.domainswild2.txt"): 3000,
}


def is_entry(line: str) -> bool:
    s = line.strip()
    return bool(s) and s[0] not in "#!["


def split(path: Path) -> tuple[list[str], list[str]]:
    """(header lines, entry lines); jsonl files have no header."""
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True)
    i = 0
    while i < len(lines) and not is_entry(lines[i]):
        i += 1
    return lines[:i], lines[i:]


def name_of(line: str) -> str:
    s = line.split("#", 1)[0].strip()
    if s.startswith("||"):
        s = s[2:].split("^", 1)[0]
    return s.removeprefix("*.").lower()


def write(dest: Path, lines: list[str]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(lines), encoding="utf-8", errors="surrogateescape")


def main(src: Path) -> None:
    for rel in COPY:
        (HERE / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, HERE / rel)
    for rel, n in HEAD.items():
        header, entries = split(src / rel)
        kept = [x for x in entries if is_entry(x)][:n]
        write(HERE / RENAME.get(rel, rel), header + kept)
    for rel, longest in SHORT_RECORDS.items():
        write(HERE / rel, [x for x in (src / rel).read_text().splitlines(keepends=True) if len(x) <= longest])
    for group, n in SAME_NAMES.items():
        header, entries = split(src / group[0])
        names = {name_of(x) for x in [x for x in entries if is_entry(x)][:n]}
        for rel in group:
            header, entries = split(src / rel)
            write(HERE / rel, header + [x for x in entries if is_entry(x) and name_of(x) in names])


if __name__ == "__main__":
    default = os.environ.get("HEARTH_SHARED_DATA") or str(HERE.parents[2] / "shared" / "data")
    main(Path(sys.argv[1] if len(sys.argv) > 1 else default))
