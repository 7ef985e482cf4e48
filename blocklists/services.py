"""Blocked services: a catalogue of apps and sites ("TikTok", "Roblox", "Zalo") a profile can block by name.

Each service is a list of domains (each blocked with or without its subdomains). The catalogue ships as
``blocklists/data/services.json``; it derives from AdGuard Home's blocked-services table (GPL-3.0, see
``blocklists/data/services-LICENSE.txt``) plus Hearth's additions (:data:`HEARTH_SERVICES`,
:data:`HEARTH_EXTRA_DOMAINS`), each marked with its source ("adguard" or "hearth").

Regenerate it from AdGuard Home's table (converted to JSON as in the shared test data,
``services/blocked_services.json``) with::

    python -m blocklists.services /path/to/blocked_services.json

The conversion (:func:`convert_adguard`) reads every rule with :func:`blocklists.parsers.parse_lines`. A rule
that is not a plain name rule is skipped and recorded in the catalogue's ``skipped`` list with the reason:
wildcard rules (``||v*.tiktokcdn-eu.com^``, which the parser turns into regexes), regexes, rules with
modifiers Hearth cannot express here (``$dnstype=~CNAME``, ``$denyallow=...``) and malformed ones. Rules for a
whole top-level domain are kept: those are brand TLDs (``||youtube^``, ``||amazon^``). One kind of
modifier is kept: ``$dnsrewrite=NXDOMAIN;;`` (iCloud Private Relay) just means "answer NXDOMAIN", i.e. block,
so such a rule is kept as a block rule and listed in ``converted``.
"""
from __future__ import annotations

import difflib
import functools
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from blocklists.parsers import ParseStats, parse_lines

__all__ = ["Service", "load_services", "service_ids", "validate_service_ids", "services_table",
           "convert_adguard", "build_catalogue", "write_catalogue", "SERVICES_JSON", "REQUIRED_SERVICES"]

SERVICES_JSON = Path(__file__).resolve().parent / "data" / "services.json"

# Services Hearth must offer whatever AdGuard Home's table holds (build_catalogue checks).
REQUIRED_SERVICES = ("tiktok", "youtube", "facebook", "instagram", "roblox", "discord", "fortnite", "minecraft",
                     "telegram", "zalo")

# Services that AdGuard Home's table does not have (if a later table has one, its domains are merged in).
HEARTH_SERVICES: Tuple[Dict[str, Any], ...] = (
    {"id": "zalo", "name": "Zalo", "group": "messenger",
     "domains": ("zalo.me", "zalo.vn", "zaloapp.com", "zadn.vn", "zdn.vn")},
    # Fortnite's game services live under ol.epicgames.com and its log-in is Epic's, so blocking Fortnite
    # means blocking epicgames.com (the Epic Games launcher and store too). epicgames.dev (Epic Online
    # Services) is left out on purpose: many games that are not Epic's use it.
    {"id": "fortnite", "name": "Fortnite", "group": "gaming",
     "domains": ("fortnite.com", "epicgames.com")},
    # Free Fire and Liên Quân Mobile (Arena of Valor) in Vietnam
    {"id": "garena", "name": "Garena", "group": "gaming",
     "domains": ("garena.com", "garena.vn", "garenanow.com")},
)

# Domains Hearth adds to AdGuard Home's services (each with its subdomains).
HEARTH_EXTRA_DOMAINS: Dict[str, Tuple[str, ...]] = {
    # AdGuard's "||v*.tiktokcdn-eu.com^" is a wildcard (skipped); TikTok's EU API domain is missing
    "tiktok": ("tiktokcdn-eu.com", "tiktokv.eu"),
    # AdGuard's rule "||slack-files.com ^" has a stray space and does not parse
    "slack": ("slack-files.com",),
}

_NXDOMAIN_REWRITE = re.compile(r"\$dnsrewrite=nxdomain;;$", re.I)


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    group: str
    domains: tuple[tuple[str, bool], ...]   # (normalised name, subdomains too)
    source: str = "adguard"                 # "adguard" or "hearth"


# ---------------------------------------------------------------- conversion (run by hand, tested)

def _skip_reason(text: str, stats: ParseStats, rules: list) -> str:
    if stats.skipped and not any(k.startswith("modifier:") for k in stats.skipped) and "*" in text:
        return "wildcard"                   # one the parser cannot translate ("||awsdns-*.com^")
    if rules:
        if any(r.allow for r in rules):
            return "allow-rule"
        return "wildcard" if "*" in text else "regex"
    if stats.skipped:
        return ",".join(sorted(stats.skipped))
    return "invalid"


def convert_adguard(path: Union[str, Path]) -> Dict[str, Any]:
    """AdGuard Home's blocked services (JSON: ``{"groups": [...], "services": [{id, name, group, rules}]}``)
    as Hearth's catalogue: services with their domains, plus the rules skipped and why.

    Domains are normalised, de-duplicated (a subtree rule beats an exact one for the same name) and sorted;
    services are sorted by id.
    """
    src = json.loads(Path(path).read_text(encoding="utf-8"))
    services = []
    skipped = []
    converted = []
    for svc in src["services"]:
        domains: Dict[str, bool] = {}
        for text in svc["rules"]:
            rule_text = text.strip()
            if _NXDOMAIN_REWRITE.search(rule_text):
                rule_text = _NXDOMAIN_REWRITE.sub("", rule_text)
                converted.append({"service": svc["id"], "rule": text, "as": "block"})
            stats = ParseStats()
            rules = list(parse_lines([rule_text], "adblock", stats, allow_single_label=True))
            plain = [r for r in rules if r.regex is None and not r.allow and r.name]
            if not plain or len(plain) != len(rules):
                skipped.append({"service": svc["id"], "rule": text, "reason": _skip_reason(text, stats, rules)})
                continue
            for r in plain:
                domains[r.name] = domains.get(r.name, False) or r.subdomains
        services.append({
            "id": svc["id"], "name": svc["name"], "group": svc["group"], "source": "adguard",
            "domains": [{"name": n, "subdomains": domains[n]} for n in sorted(domains)],
        })
    services.sort(key=lambda s: s["id"])
    return {
        "source": {k: src[k] for k in ("source_repository", "source_path", "source_commit", "licence") if k in src},
        "groups": list(src["groups"]),
        "services": services,
        "skipped_count": len(skipped),
        "skipped": skipped,
        "converted": converted,
    }


def build_catalogue(adguard_path: Union[str, Path]) -> Dict[str, Any]:
    """:func:`convert_adguard` plus Hearth's additions: what ``blocklists/data/services.json`` holds."""
    cat = convert_adguard(adguard_path)
    by_id = {s["id"]: s for s in cat["services"]}
    for extra in HEARTH_SERVICES:
        if extra["group"] not in cat["groups"]:
            raise ValueError(f"Hearth service {extra['id']!r}: unknown group {extra['group']!r}")
        svc = by_id.get(extra["id"])
        if svc is None:
            svc = {"id": extra["id"], "name": extra["name"], "group": extra["group"], "source": "hearth",
                   "domains": [{"name": d, "subdomains": True} for d in sorted(extra["domains"])]}
            cat["services"].append(svc)
            by_id[svc["id"]] = svc
        else:
            _add_domains(svc, extra["domains"])
    for sid, names in HEARTH_EXTRA_DOMAINS.items():
        if sid not in by_id:
            raise ValueError(f"Hearth domains for unknown service {sid!r}")
        _add_domains(by_id[sid], names)
    cat["services"].sort(key=lambda s: s["id"])
    missing = [sid for sid in REQUIRED_SERVICES if sid not in by_id]
    if missing:
        raise ValueError(f"required services missing from the catalogue: {', '.join(missing)}")
    cat["hearth"] = "services marked source 'hearth' and domains marked source 'hearth' are Hearth's additions"
    return cat


def _add_domains(svc: Dict[str, Any], names: Iterable[str]) -> None:
    """Hearth domains (with subdomains) for an AdGuard service, marked ``"source": "hearth"``."""
    have = {d["name"]: d for d in svc["domains"]}
    for name in names:
        entry = have.get(name)
        if entry is not None:
            entry["subdomains"] = True
            continue
        svc["domains"].append({"name": name, "subdomains": True, "source": "hearth"})
    svc["domains"].sort(key=lambda d: d["name"])


def dumps_catalogue(cat: Dict[str, Any]) -> str:
    """The catalogue as JSON text: indented, one domain per line."""
    text = json.dumps(cat, indent=1, ensure_ascii=False)
    # fold each domain object onto one line
    text = re.sub(r'\{\n\s+("name": "[^"]*",)\n\s+("subdomains": (?:true|false))(,)?\n\s+("source": "[^"]*")?\n?\s*\}',
                  lambda m: "{" + m.group(1) + " " + m.group(2) + (m.group(3) or "")
                  + (" " + m.group(4) if m.group(4) else "") + "}", text)
    return text + "\n"


def write_catalogue(adguard_path: Union[str, Path], out: Union[str, Path] = SERVICES_JSON) -> Dict[str, Any]:
    cat = build_catalogue(adguard_path)
    text = dumps_catalogue(cat)
    if json.loads(text) != cat:
        raise AssertionError("catalogue JSON does not round-trip")
    Path(out).write_text(text, encoding="utf-8")
    return cat


# ---------------------------------------------------------------- runtime API

@functools.cache
def _load(path: str) -> Dict[str, Service]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    services = {}
    for s in data["services"]:
        services[s["id"]] = Service(
            id=s["id"], name=s["name"], group=s["group"],
            domains=tuple((d["name"], bool(d["subdomains"])) for d in s["domains"]),
            source=s.get("source", "adguard"))
    return services


def load_services() -> Dict[str, Service]:
    """Every service of the bundled catalogue by id (read once, then cached; the dict is a fresh copy)."""
    return dict(_load(str(SERVICES_JSON)))


def service_ids() -> List[str]:
    return sorted(_load(str(SERVICES_JSON)))


def validate_service_ids(ids: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    """The ids (trimmed, lower-cased, duplicates dropped, order kept); ValueError naming every unknown one."""
    services = _load(str(SERVICES_JSON))
    if isinstance(ids, str):
        ids = [ids]
    out: List[str] = []
    errors: List[str] = []
    for raw in ids:
        if not isinstance(raw, str):
            errors.append(f"service ids are text, not {raw!r} (see `hearth services list`)")
            continue
        sid = raw.strip().lower()
        if sid in services:
            if sid not in out:
                out.append(sid)
            continue
        msg = f"unknown service {raw.strip()!r} (see `hearth services list`)"
        hint = _did_you_mean(sid, services)
        if hint:
            msg += f"; did you mean {hint!r}?"
        errors.append(msg)
    if errors:
        raise ValueError("; ".join(errors))
    return tuple(out)


def _did_you_mean(sid: str, services: Dict[str, Service]) -> Optional[str]:
    if not sid:
        return None
    squashed = re.sub(r"[^a-z0-9]", "", sid)
    by_key: Dict[str, str] = {}
    for s in services.values():
        by_key.setdefault(s.id, s.id)
        by_key.setdefault(re.sub(r"[^a-z0-9]", "", s.id), s.id)
        by_key.setdefault(re.sub(r"[^a-z0-9]", "", s.name.lower()), s.id)
    if squashed in by_key:                      # "You Tube", "battle.net", "Epic-Games"
        return by_key[squashed]
    close = difflib.get_close_matches(squashed or sid, list(by_key), n=1, cutoff=0.75)
    return by_key[close[0]] if close else None


def services_table() -> str:
    """A text table (id, name, group, domains) of every service, for ``hearth services list``."""
    services = sorted(_load(str(SERVICES_JSON)).values(), key=lambda s: s.id)
    rows = [("ID", "NAME", "GROUP", "DOMAINS")]
    rows += [(s.id, s.name, s.group, str(len(s.domains))) for s in services]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3].rjust(7) for r in rows]
    counts = Counter(s.source for s in services)
    lines.append(f"{len(services)} services ({counts['adguard']} from AdGuard Home, "
                 f"{counts['hearth']} added by Hearth)")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m blocklists.services BLOCKED_SERVICES_JSON [OUT]", file=sys.stderr)
        return 2
    cat = write_catalogue(args[0], args[1] if len(args) > 1 else SERVICES_JSON)
    print(f"{len(cat['services'])} services, {cat['skipped_count']} rules skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
