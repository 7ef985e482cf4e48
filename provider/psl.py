"""Registrable domains from the Public Suffix List: ``a.bad.example.com.vn`` → ``bad.example.com.vn``.

Rules come from the Debian package ``publicsuffix`` (/usr/share/publicsuffix/public_suffix_list.dat) when it
is installed, else from the part of the list bundled in provider/data (MPL-2.0, see PSL-LICENSE.txt there).
The matching is the list's own algorithm: the longest matching rule wins, ``*.`` rules match one label,
``!`` exceptions beat them, and an unlisted top-level domain counts as a public suffix of one label."""
from __future__ import annotations

import functools
import os

SYSTEM_LIST = "/usr/share/publicsuffix/public_suffix_list.dat"
BUNDLED_LIST = os.path.join(os.path.dirname(__file__), "data", "public_suffix_list.dat")


def _load(path: str) -> tuple[frozenset, frozenset, frozenset]:
    rules, wild, exceptions = set(), set(), set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            rule = line.split(None, 1)[0] if line.strip() else ""
            if not rule or rule.startswith("//"):
                continue
            rule = rule.encode("idna").decode("ascii") if not rule.isascii() else rule.lower()
            if rule.startswith("!"):
                exceptions.add(rule[1:])
            elif rule.startswith("*."):
                wild.add(rule[2:])
            else:
                rules.add(rule)
    return frozenset(rules), frozenset(wild), frozenset(exceptions)


@functools.lru_cache(maxsize=1)
def _rules() -> tuple[frozenset, frozenset, frozenset]:
    for path in (SYSTEM_LIST, BUNDLED_LIST):
        try:
            return _load(path)
        except (OSError, UnicodeError):
            continue
    return frozenset(), frozenset(), frozenset()


def public_suffix(name: str) -> str:
    """The public suffix of a normalised name (lower case, punycode, no trailing dot)."""
    rules, wild, exceptions = _rules()
    labels = name.split(".")
    for i in range(len(labels)):             # longest candidate first
        candidate = ".".join(labels[i:])
        if candidate in exceptions:
            return ".".join(labels[i + 1:])
        if candidate in rules:
            return candidate
        if i + 1 < len(labels) and ".".join(labels[i + 1:]) in wild:
            return candidate
    return labels[-1]


def registrable_domain(name: str) -> str:
    """The public suffix plus one label (``bad.example.com.vn``); the name itself when it is a public suffix."""
    suffix = public_suffix(name)
    if name == suffix:
        return name
    head = name[: -len(suffix) - 1]
    return head.rsplit(".", 1)[-1] + "." + suffix
