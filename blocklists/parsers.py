"""Streaming parsers for public DNS blocklists: hosts, domains, wildcard, adblock, regex and dnsmasq syntax.

Every format comes out as one stream of :class:`Rule` tuples with the names in the one normalised form of
:func:`resolver.base.names.normalise_name` (lower case, IDNA punycode, no trailing dot). Nothing is read whole: files
are read line by line (a line longer than :data:`MAX_LINE` characters is cut off, counted invalid and its rest
skipped), so a 2-million-line list costs the memory of one line plus whatever the caller keeps.

What each format means, and what is skipped, is written up for users in ``docs/list-formats.md``; keep the two
in step.

    stats = ParseStats()
    for rule in parse_file("oisd_small.txt", "auto", stats):
        ...
    stats.format, stats.rules, stats.invalid, stats.skipped  # "adblock", 47908, 0, Counter()
"""
from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from typing import Iterable, Iterator, Optional, Union

from .line_syntax import (_COSMETIC, _COSMETIC_START, _LOOKS_NAME, _REGEX_CHARS, LOCAL_NAMES, MAX_REGEX, LineParser,
                          ParseStats, Rule, _ip)

__all__ = ["FORMATS", "LOCAL_NAMES", "MAX_LINE", "MAX_REGEX", "ParseStats", "Rule", "detect_format", "parse_file",
           "parse_lines"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_LINE_END_B = re.compile(rb"\r\n|\r|\n")
_HEADER_WILDCARD = re.compile(r"[#!]\s*(?:syntax|format)\s*:.*(?:wildcard|without subdomains)", re.I)

FORMATS = ("hosts", "domains", "wildcard", "adblock", "regex", "dnsmasq")

MAX_LINE = 16384           # characters: a longer line is invalid (no list needs one; a file without newlines has one)
DETECT_LINES = 200         # non-comment lines that format detection looks at
MAX_PEEK_LINES = 2000      # lines buffered at most while detecting (comment-heavy headers)


# ---------------------------------------------------------------- public API

def detect_format(sample_lines: Iterable[Union[str, bytes]]) -> str:
    """The most likely of :data:`FORMATS` for a list, from its first lines (comments included).

    Each of the first :data:`DETECT_LINES` non-comment lines votes for the syntax it is written in; the
    majority wins. Bare names cannot tell "domains" (exact) from "wildcard" (name and subdomains): a list of
    bare names is "domains" unless most of its lines start with ``*.`` or its header declares a wildcard
    syntax (HaGeZi "Syntax: Domains (without subdomains)", oisd "Syntax: Domains (wildcards) without *.").
    An empty sample gives "domains".
    """
    votes: Counter[str] = Counter()
    header_wildcard = False
    content = 0
    for line in sample_lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        s = line.strip().lstrip("\ufeff")
        if not s:
            continue
        kind = _classify(s)
        if kind == "comment":
            if not content and _HEADER_WILDCARD.match(s):
                header_wildcard = True
            continue
        if kind == "adblock-header":
            votes["adblock"] += 1
            continue
        content += 1
        if kind:
            votes[kind] += 1
        if content >= DETECT_LINES:
            break
    names = votes["domains"] + votes["wildcard"]
    # ties go to the earlier, more specific syntax
    ranked = [("adblock", votes["adblock"]), ("dnsmasq", votes["dnsmasq"]), ("hosts", votes["hosts"]),
              ("regex", votes["regex"]), ("names", names)]
    best, count = max(ranked, key=lambda kv: kv[1])
    if count == 0 or best == "names":
        if votes["wildcard"] > votes["domains"] or header_wildcard:
            return "wildcard"
        return "domains"
    return best


def parse_lines(lines: Iterable[Union[str, bytes]], fmt: str = "auto", stats: Optional[ParseStats] = None, *,
                allow_single_label: bool = False) -> Iterator[Rule]:
    """Rules from the lines of a list (str, or bytes decoded as UTF-8 with errors="replace"; a whole text is split).

    ``fmt`` is one of :data:`FORMATS` or "auto" (the first lines are buffered, :func:`detect_format` picks,
    streaming goes on). Counts go to ``stats`` as the rules are consumed; ``stats.format`` is set before the
    first rule. ``allow_single_label`` lets subtree rules for one-label names (``||zip^``: a whole top-level
    domain) through; by default they are skipped as "single-label". Raises ValueError for an unknown format.
    """
    fmt = _check_format(fmt)
    if isinstance(lines, (str, bytes)):   # a whole text rather than its lines
        parts = _LINE_END_B.split(lines) if isinstance(lines, bytes) else _LINE_END.split(lines)
        if parts and not parts[-1]:
            parts.pop()                    # the end of the last line, not an empty line after it
        lines = parts
    return _parse(lines, fmt, stats if stats is not None else ParseStats(), allow_single_label)


def parse_file(path: Union[str, os.PathLike], fmt: str = "auto", stats: Optional[ParseStats] = None, *,
               allow_single_label: bool = False) -> Iterator[Rule]:
    """Rules from a list file, streamed: never reads the whole file into memory.

    Bytes are decoded as UTF-8 with errors="replace"; a UTF-8 BOM is dropped; CRLF, LF and CR line ends are
    all accepted. The file is opened on the first ``next()`` and closed when the iterator is exhausted or
    closed. See :func:`parse_lines` for ``fmt``, ``stats`` and ``allow_single_label``.
    """
    fmt = _check_format(fmt)
    return _parse(_read_lines(path), fmt, stats if stats is not None else ParseStats(), allow_single_label)


# ---------------------------------------------------------------- reading

class _Overlong(str):
    """The first MAX_LINE + 1 characters of a line that was longer than MAX_LINE (the rest was skipped)."""


def _read_lines(path: Union[str, os.PathLike]) -> Iterator[str]:
    limit = MAX_LINE + 1
    with open(path, encoding="utf-8", errors="replace", newline=None) as f:
        readline = f.readline
        while True:
            line = readline(limit)
            if not line:
                return
            if len(line) == limit and not line.endswith("\n"):
                rest = line
                while rest and not rest.endswith("\n"):   # skip the rest without holding it
                    rest = readline(limit)
                line = _Overlong(line)
            yield line


def _texts(lines: Iterable[Union[str, bytes]]) -> Iterator[str]:
    """Decoded lines, the BOM dropped from the first one."""
    it = iter(lines)
    for line in it:
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        if line.startswith("\ufeff"):
            line = type(line)(line[1:])   # keeps an _Overlong marked
        yield line
        break
    for line in it:
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        yield line


def _check_format(fmt: str) -> str:
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown list format {fmt!r}: expected auto or one of {', '.join(FORMATS)}")
    return fmt


def _parse(lines: Iterable[Union[str, bytes]], fmt: str, stats: ParseStats, single_label: bool) -> Iterator[Rule]:
    texts: Iterator[str] = _texts(lines)
    if fmt == "auto":
        head: list[str] = []
        content = 0
        for line in texts:
            head.append(line)
            s = line.strip()
            if s and s[0] not in "#![":
                content += 1
            if content >= DETECT_LINES or len(head) >= MAX_PEEK_LINES:
                break
        fmt = detect_format(head)
        texts = itertools.chain(head, texts)
    stats.format = fmt
    parser = LineParser(stats, single_label)
    handle = getattr(parser, "line_" + fmt)
    lineno = 0
    for line in texts:
        lineno += 1
        stats.lines += 1
        s = line.strip()
        if not s:
            stats.comments += 1
            continue
        parser.lineno, parser.line = lineno, line
        if len(line) >= MAX_LINE and (type(line) is _Overlong or len(s) > MAX_LINE):
            parser.invalid()
            continue
        rules = handle(s)
        if rules:
            stats.rules += len(rules)
            yield from rules


# ---------------------------------------------------------------- detection

def _classify(s: str) -> Optional[str]:
    """The syntax one stripped, non-blank line is written in: a format name, "comment", or None (no vote)."""
    c0 = s[0]
    if c0 == "!":
        return "comment"
    if c0 == "[" and s.endswith("]"):
        if s.lower().startswith(("[adblock", "[adguard", "[ublock")):
            return "adblock-header"
        return "comment"
    if c0 == "#":
        return "adblock" if _COSMETIC_START.match(s) else "comment"
    if s.startswith(("||", "@@", "|")) or _COSMETIC.search(s):
        return "adblock"
    if s.startswith(("address=/", "server=/", "local=/")):
        return "dnsmasq"
    parts = s.split("#", 1)[0].split()
    if not parts:
        return None
    if len(parts) >= 2:
        return "hosts" if _ip(parts[0]) is not None else None
    t = parts[0]
    if t.startswith("*."):
        return "wildcard"
    if t.endswith("^") or "^$" in t or (t.startswith("/") and t.endswith("/") and len(t) > 2):
        return "adblock"
    if _LOOKS_NAME.fullmatch(t):
        return None if _ip(t.rstrip(".")) is not None else "domains"
    if ".*" in t or any(ch in _REGEX_CHARS for ch in t):
        return "regex"
    return None


