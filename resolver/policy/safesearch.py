"""Safe search: which query names are answered with a search engine's "safe" host instead of their own.

A search engine that supports it serves a filtered variant of its results from a separate host
(``forcesafesearch.google.com``, ``strict.bing.com`` ...). The DNS answer for ``www.google.com`` is then a
CNAME to that host plus the host's own addresses, which the engine resolves as usual: the browser still
talks to "www.google.com" (same TLS certificate), but the engine behind it enforces safe search.

Two switches, per profile:

* ``safe_search`` (on/off): Google (every ``www.google.<tld>`` and ``google.<tld>``), Bing, DuckDuckGo,
  Yandex, Brave Search, Ecosia and Pixabay;
* ``youtube``: "strict" (``restrict.youtube.com``), "moderate" (``restrictmoderate.youtube.com``) or "off".

A target is normally a host name. One is not: AdGuard Home's Yandex rules answer with a fixed address
(``A 213.180.193.56``, Yandex's family search front end) rather than a CNAME to ``familysearch.yandex.ru``;
Hearth follows the rules file, so for the Yandex names :func:`safe_target` returns that IPv4 address literal
(listed in :data:`ADDRESS_TARGETS`). The engine answers an A query with it and every other type with NODATA
(no AAAA, so a dual-stack client cannot go round it over IPv6).

Only the exact names below are rewritten (no subdomains), as in the rules files.

Sources: the name tables are taken from AdGuard Home's safe-search rules
(``internal/filtering/safesearch/rules/*.txt``, github.com/AdguardTeam/AdGuardHome at commit
``75e43ab5b251aa5038ebc857595855c5b168b93d``, GPL-3.0, the same licence as Hearth; copies and the licence text
are in the shared test data, ``safesearch/``), except:

* ``google.<tld>`` (without ``www.``): added by Hearth for every Google TLD in the rules file;
* Brave Search (``search.brave.com`` -> ``forcesafe.search.brave.com``): Brave's documented safe-search host,
  not in AdGuard Home's rules;
* YouTube "strict": the rules file has the moderate target only; strict is Google's ``restrict.youtube.com``.

Bing: the rules file rewrites ``www.bing.com`` and ``edgeservices.bing.com`` (Edge's sidebar search), not the
bare ``bing.com`` (which only redirects to ``www.bing.com``); Hearth follows the file.

``tests/policy/test_safesearch.py`` checks these tables against the rules files.
"""
from __future__ import annotations

from functools import cache
from typing import Dict, FrozenSet, Optional

from resolver.base.names import wire_name

__all__ = ["safe_target", "safe_target_wire", "safe_target_table", "SAFE_HOSTS", "ADDRESS_TARGETS", "SEARCH_NAMES",
           "YOUTUBE_NAMES", "YOUTUBE_LEVELS", "is_address_target"]

YOUTUBE_LEVELS = ("strict", "moderate", "off")

GOOGLE_SAFE = "forcesafesearch.google.com"
BING_SAFE = "strict.bing.com"
DUCKDUCKGO_SAFE = "safe.duckduckgo.com"
BRAVE_SAFE = "forcesafe.search.brave.com"
ECOSIA_SAFE = "strict-safe-search.ecosia.org"
PIXABAY_SAFE = "safesearch.pixabay.com"
YANDEX_SAFE_ADDRESS = "213.180.193.56"       # A record only (see the module docstring)
YOUTUBE_STRICT = "restrict.youtube.com"
YOUTUBE_MODERATE = "restrictmoderate.youtube.com"

# The 194 TLDs of rules/google.txt ("|www.google.<tld>^$dnsrewrite=NOERROR;CNAME;forcesafesearch.google.com"),
# in the file's order.
GOOGLE_TLDS = tuple("""
ad ae al am as at az ba be bf bg bi bj bs bt by ca cat cd cf cg ch ci cl cm cn co co.ao co.bw co.ck co.cr
co.id co.il co.in co.jp co.ke co.kr co.ls co.ma co.mz co.nz co.th co.tz co.ug co.uk co.uz co.ve co.vi co.za
co.zm co.zw com.af com.ag com.ai com.ar com.au com.bd com.bh com.bn com.bo com.br com.bz com.co com.cu com.cy
com.do com.ec com.eg com.et com.fj com.gh com.gi com.gt com.hk com.jm com.kh com.kw com.lb com.ly com.mm
com.mt com.mx com.my com.na com.nf com.ng com.ni com.np com.om com.pa com.pe com.pg com.ph com.pk com.pr
com.py com.qa com.sa com.sb com.sg com.sl com.sv com.tj com.tr com.tw com.ua com.uy com.vc com.vn com cv cz de
dj dk dm dz ee es fi fm fr ga ge gg gl gm gp gr gy hn hr ht hu ie im iq is it je jo kg ki kz la li lk lt lu lv
md me mg mk ml mn ms mu mv mw ne nl no nr nu pl pn ps pt ro rs ru rw sc se sh si sk sm sn so sr st td tg tk tl
tm tn to tt vg vu ws
""".split())

# rules/yandex.txt: each of these and its "www." name -> A 213.180.193.56 (xn--d1acpjx3f.xn--p1ai is яндекс.рф)
YANDEX_DOMAINS = (
    "xn--d1acpjx3f.xn--p1ai", "ya.ru", "yandex.az", "yandex.by", "yandex.co.il", "yandex.com.am", "yandex.com.ge",
    "yandex.com.ru", "yandex.com.tr", "yandex.com", "yandex.de", "yandex.ee", "yandex.eu", "yandex.fi", "yandex.fr",
    "yandex.kz", "yandex.lt", "yandex.lv", "yandex.md", "yandex.net", "yandex.org", "yandex.pl", "yandex.ru",
    "yandex.tj", "yandex.tm", "yandex.uz",
)

# rules/youtube.txt (all five names)
YOUTUBE_NAMES: FrozenSet[str] = frozenset({
    "www.youtube.com", "m.youtube.com", "youtubei.googleapis.com", "youtube.googleapis.com",
    "www.youtube-nocookie.com",
})


def _search_table() -> Dict[str, str]:
    table: Dict[str, str] = {}
    for tld in GOOGLE_TLDS:
        table["www.google." + tld] = GOOGLE_SAFE
        table["google." + tld] = GOOGLE_SAFE
    for name in ("www.bing.com", "edgeservices.bing.com"):                                  # rules/bing.txt
        table[name] = BING_SAFE
    for name in ("duckduckgo.com", "www.duckduckgo.com", "start.duckduckgo.com"):          # rules/duckduckgo.txt
        table[name] = DUCKDUCKGO_SAFE
    for domain in YANDEX_DOMAINS:                                                           # rules/yandex.txt
        table[domain] = YANDEX_SAFE_ADDRESS
        table["www." + domain] = YANDEX_SAFE_ADDRESS
    table["search.brave.com"] = BRAVE_SAFE                                                  # Brave's own docs
    table["www.ecosia.org"] = ECOSIA_SAFE                                                   # rules/ecosia.txt
    table["pixabay.com"] = PIXABAY_SAFE                                                     # rules/pixabay.txt
    return table


_wire = wire_name


_SEARCH: Dict[str, str] = _search_table()
SEARCH_NAMES: FrozenSet[str] = frozenset(_SEARCH)
_YOUTUBE: Dict[str, Dict[str, str]] = {
    "strict": dict.fromkeys(YOUTUBE_NAMES, YOUTUBE_STRICT),
    "moderate": dict.fromkeys(YOUTUBE_NAMES, YOUTUBE_MODERATE),
    "off": {},
}
_SEARCH_WIRE: Dict[bytes, str] = {_wire(name): target for name, target in _SEARCH.items()}
_YOUTUBE_WIRE: Dict[str, Dict[bytes, str]] = {
    level: {_wire(name): target for name, target in table.items()} for level, table in _YOUTUBE.items()}

ADDRESS_TARGETS: FrozenSet[str] = frozenset({YANDEX_SAFE_ADDRESS})
# Every target that is a host name: the engine must never rewrite these themselves (and must resolve them).
SAFE_HOSTS: FrozenSet[str] = frozenset(
    (set(_SEARCH.values()) | {YOUTUBE_STRICT, YOUTUBE_MODERATE}) - ADDRESS_TARGETS)

assert not (SEARCH_NAMES & YOUTUBE_NAMES) and not (SAFE_HOSTS & (SEARCH_NAMES | YOUTUBE_NAMES))


def is_address_target(target: str) -> bool:
    """True when :func:`safe_target` gave an IPv4 address (answer A with it, NODATA otherwise), not a host."""
    return target in ADDRESS_TARGETS


def safe_target(name: str, *, safe_search: bool, youtube: str) -> Optional[str]:
    """The safe host (or, for Yandex, address) a query for ``name`` must be answered with, or None.

    ``name`` is normalised (lower case, no trailing dot: :func:`resolver.base.names.normalise_name`); ``youtube`` is
    one of :data:`YOUTUBE_LEVELS` (ValueError otherwise).
    """
    if safe_search:
        target = _SEARCH.get(name)
        if target is not None:
            return target
    table = _YOUTUBE.get(youtube)
    if table is None:
        raise ValueError(f"youtube restriction must be one of {', '.join(YOUTUBE_LEVELS)}, not {youtube!r}")
    return table.get(name)


@cache
def safe_target_table(safe_search: bool, youtube: str) -> Dict[bytes, str]:
    """Every answer of :func:`safe_target_wire` under these settings in one table, wire name → target (the
    search and YouTube names are apart, so one lookup gives what the two steps give); ValueError for an unknown
    ``youtube``. Shared: do not change it."""
    table = _YOUTUBE_WIRE.get(youtube)
    if table is None:
        raise ValueError(f"youtube restriction must be one of {', '.join(YOUTUBE_LEVELS)}, not {youtube!r}")
    return {**_SEARCH_WIRE, **table} if safe_search else dict(table)


def safe_target_wire(name_wire: bytes, *, safe_search: bool, youtube: str) -> Optional[str]:
    """:func:`safe_target` for a lower-case, uncompressed wire name (``b"\\x03www\\x06google\\x03com\\x00"``)."""
    if safe_search:
        target = _SEARCH_WIRE.get(name_wire)
        if target is not None:
            return target
    table = _YOUTUBE_WIRE.get(youtube)
    if table is None:
        raise ValueError(f"youtube restriction must be one of {', '.join(YOUTUBE_LEVELS)}, not {youtube!r}")
    return table.get(name_wire)
