#!/usr/bin/env python3
"""Rebuild the category starter lists bundled beside this script, deterministically.

    python blocklists/data/make_starter_lists.py /path/to/shared/data

Reads the UT1, HaGeZi and hostsVN snapshots of the shared data folder (see its README.md for
the upstream commits) and the blocked-services catalogue bundled here (``services.json``), and
writes one file per (category, source), each starting with a header that names its source,
licence and how it was made. The lists that were bundled before (malware, bypass, adult,
gambling, ads) are not touched. Nothing is taken from the data folder's ``eval/``.

What is cut, and why:

* UT1 lists (violence, drugs, dating, social): bare IP addresses are dropped (a DNS filter
  never sees them), and so are the names of :data:`UT1_EXCLUDE`: names of those categories
  that also carry school work, messaging, app stores or other sites' infrastructure, found
  by checking each list against the most-queried names (Cisco Umbrella top names).
* UT1 ``games`` is not bundled: its most-queried entries include apps.apple.com,
  play.google.com and pbskids.org. Games come from the services catalogue instead.
* Services catalogue: a category takes every domain of the services of its groups
  (:data:`SERVICE_GROUPS`), minus the music-only services of the "streaming" group.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
UT1_SOURCE = "UT1 blacklists, Université Toulouse Capitole (olbat/ut1-blacklists 804da92a, 2026-08-17)"
UT1_LICENCE = "CC BY-SA 4.0 (licenses/ut1-CC-BY-SA-4.0.pdf); changes: IP addresses and the names below removed"

# Names dropped from a UT1 category, with the reason.
UT1_EXCLUDE: dict[str, dict[str, str]] = {
    "social_networks": {
        "academia.edu": "research papers (school work)", "researchgate.net": "research papers (school work)",
        "goodreads.com": "books", "librarything.com": "books", "wattpad.com": "reading",
        "allrecipes.com": "recipes", "tripadvisor.com": "travel reviews", "yelp.com": "reviews",
        "flixster.com": "film reviews", "box.net": "file storage", "gravatar.com": "avatars on other sites",
        "disqus.com": "comments on other sites", "juicer.io": "feeds embedded in other sites",
        "news.ycombinator.com": "news", "buymeacoffee.com": "payments",
        "telegram.org": "messenger (a service switch)", "whatsapp.com": "messenger (a service switch)",
        "soundcloud.com": "music", "crunchyroll.com": "video (a service switch)",
        "yammer.com": "work", "xing.com": "work", "mylife.com": "people search",
    },
    "dating": {
        "eventbrite.com": "event tickets", "meetup.com": "local groups", "timeout.com": "city guide",
        "eskimi.com": "advertising", "preciso.net": "advertising", "2trk.info": "advertising",
    },
    "agressif": {},
    "drogue": {},
}

UT1_LISTS = (  # (output file, UT1 category, title)
    ("violence-ut1.txt", "agressif", "UT1 agressif: violence, hate, aggression"),
    ("drugs-ut1.txt", "drogue", "UT1 drogue: drugs"),
    ("dating-ut1.txt", "dating", "UT1 dating: dating sites"),
    ("social-ut1.txt", "social_networks", "UT1 social_networks: social networks"),
)

SERVICE_GROUPS = {  # output file -> (service groups, services left out)
    "social-services.txt": (("social_network",), ()),
    "video-services.txt": (("streaming",), ("deezer", "iheartradio", "soundcloud", "spotify", "tidal")),
    "games-services.txt": (("gaming",), ()),
    "dating-services.txt": (("dating",), ()),
}

VERBATIM = (  # (output file, shared data path, header)
    ("trackers-hagezi-tiktok.txt", "hagezi/native.tiktok.domains.txt",
     "HaGeZi TikTok native tracker list, domains syntax (exact names), unmodified.\n"
     "source: hagezi/dns-blocklists domains/native.tiktok.txt (tuapuikia fork 0a2035c1, 2023-09-19)\n"
     "licence: GPL-3.0 (licenses/GPL-3.0.txt)"),
    ("adult-hostsvn.txt", "hostsvn/adult-VN.domains.txt",
     "hostsVN adult, Vietnamese-language sites (exact names).\n"
     "source: bigdargon/hostsVN extensions/adult/domain-VN.txt (83537ccd, 2026-07-23)\n"
     "licence: MIT (licenses/hostsvn-MIT.txt)"),
    ("gambling-hostsvn.txt", "hostsvn/gambling-VN.domains.txt",
     "hostsVN gambling, Vietnamese-language sites (exact names).\n"
     "source: bigdargon/hostsVN extensions/gambling/domain-VN.txt (83537ccd, 2026-07-23)\n"
     "licence: MIT (licenses/hostsvn-MIT.txt)"),
    ("threat-hostsvn.txt", "hostsvn/threat-VN.domains.txt",
     "hostsVN threat: scam, phishing and malware aimed at Vietnamese users (exact names), unmodified.\n"
     "source: bigdargon/hostsVN extensions/threat/domain-VN.txt (83537ccd, 2026-07-23)\n"
     "licence: MIT (licenses/hostsvn-MIT.txt)"),
    ("ads-hostsvn.txt", "hostsvn/ads-VN.domains.txt",
     "hostsVN ads and trackers, Vietnamese sites (exact names), unmodified.\n"
     "source: bigdargon/hostsVN option/domain-VN.txt (83537ccd, 2026-07-23)\nlicence: MIT (licenses/hostsvn-MIT.txt)"),
)

LICENCES = (("ut1/LICENSE.pdf", "licenses/ut1-CC-BY-SA-4.0.pdf"), ("hostsvn/LICENSE", "licenses/hostsvn-MIT.txt"))


def _header(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines()) + "#\n"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ut1_list(data: Path, category: str, title: str) -> str:
    exclude = UT1_EXCLUDE[category]
    names = [n.strip().lower() for n in (data / "ut1" / f"{category}.domains").read_text().splitlines()]
    kept = [n for n in names if n and not _is_ip(n) and n not in exclude]
    dropped = "".join(f"#   {n}: {why}\n" for n, why in sorted(exclude.items()))
    head = _header(f"{title}\nsource: {UT1_SOURCE}, blacklists/{category}/domains\nlicence: {UT1_LICENCE}\n"
                   "format: one name per line, each blocks itself and its subdomains")
    return head + (f"# removed:\n{dropped}#\n" if dropped else "") + "".join(f"{n}\n" for n in kept)


def services_list(groups: tuple, leave_out: tuple) -> str:
    catalogue = json.loads((HERE / "services.json").read_text(encoding="utf-8"))
    picked = sorted((s for s in catalogue["services"] if s["group"] in groups and s["id"] not in leave_out),
                    key=lambda s: s["id"])
    rules = sorted({("||" if d["subdomains"] else "|") + d["name"] + "^" for s in picked for d in s["domains"]},
                   key=lambda r: r.lstrip("|"))
    head = _header(f"Every domain of the blocked-services catalogue's {', '.join(groups)} services: "
                   f"{', '.join(s['id'] for s in picked)}\n"
                   "source: services.json here (from AdGuard Home internal/filtering/servicelist.go 75e43ab5, "
                   "2026-08-21, plus Hearth's additions)\nlicence: GPL-3.0 (services-LICENSE.txt)")
    return head.replace("# ", "! ").replace("#\n", "!\n") + "".join(f"{r}\n" for r in rules)


def main(argv: list) -> int:
    if len(argv) != 2 or not (Path(argv[1]) / "ut1").is_dir():
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    data = Path(argv[1])
    for out, category, title in UT1_LISTS:
        (HERE / out).write_text(ut1_list(data, category, title))
    for out, (groups, leave_out) in SERVICE_GROUPS.items():
        (HERE / out).write_text(services_list(groups, leave_out))
    for out, src, header in VERBATIM:
        text = (data / src).read_text()
        (HERE / out).write_text(text if text.startswith("#") else _header(header) + text)
    for src, out in LICENCES:
        shutil.copyfile(data / src, HERE / out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
