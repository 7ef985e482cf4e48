"""What one line of a blocklist means, format by format: the :class:`Rule` tuple every format comes out as,
the parse counters, and :class:`LineParser` (one method per format's line syntax: hosts, domains, wildcard,
adblock, regex, dnsmasq). Reading files, format detection and the public API are in :mod:`blocklists.parsers`.
"""
from __future__ import annotations

import ipaddress
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Tuple, Union

from resolver.base.names import normalise_name

MAX_REGEX = 512            # characters: a longer regex is invalid
INVALID_SAMPLES = 10       # invalid lines kept as examples in ParseStats


class Rule(NamedTuple):
    name: str                     # normalised name ("" for regex rules); never has a leading "*."
    subdomains: bool = False      # True: the name and every subdomain; False: exactly this name
    allow: bool = False           # an allow/exception rule (adblock "@@"), beats block rules
    important: bool = False       # adblock "$important" block rule: beats allow rules
    regex: Optional[str] = None   # for regex rules: the pattern (Python `re` syntax, for re.search), else None


@dataclass
class ParseStats:
    format: str = ""              # the format used (after auto detection)
    lines: int = 0
    rules: int = 0
    comments: int = 0             # blank and comment lines
    skipped: Counter[str] = field(default_factory=Counter)  # valid but unsupported, by kind (see the docs)
    invalid: int = 0              # lines with something that is neither a rule nor a known skip (once per line)
    invalid_samples: List[Tuple[int, str]] = field(default_factory=list)  # first 10 (line_number, line_text[:200])


# Names that hosts files map to themselves; never block entries (skipped as "localhost", in every format).
LOCAL_NAMES = frozenset({
    "localhost", "localhost.localdomain", "local", "localdomain", "broadcasthost",
    "localhost4", "localhost4.localdomain4", "localhost6", "localhost6.localdomain6",
    "ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
    "ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0",
})

# Addresses that mean "blocked" in a hosts file (fast path; any other loopback or unspecified address is too).
_SINKS = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "0", "::0", "0:0:0:0:0:0:0:0", "0:0:0:0:0:0:0:1"})

_COSMETIC = re.compile(r"#@?[$%?]{0,2}#|\$@?\$")          # ##  #@#  #?#  #$#  #@$?#  #%#  $$  $@$ ...
# a generic cosmetic rule at the start of a line ("##.ad", "###banner"), not a "## Section ##" comment
_COSMETIC_START = re.compile(r"#@?[$%?]{0,2}#(?:[.\[\w*:]|#[\w-])")
_NOT_HOST = re.compile(r"[/:?=&^|%\s]")                      # a URL or path part: not a pure domain
_WILD_HOST = re.compile(r"[a-z0-9_.*-]+")                    # what a translatable wildcard host may hold
_TRAILING_COMMENT = re.compile(r"\s+#.*$")
_TRAILING_ADBLOCK_COMMENT = re.compile(r"\s+[#!].*$")
_PIHOLE_OPTION = re.compile(r";(querytype|invert|reply)\b")  # Pi-hole regex extensions: ";querytype=AAAA"
_DNSMASQ_KEY = re.compile(r"[a-z][a-z0-9-]*")
_LOOKS_NAME = re.compile(r"[\w.-]+\.?")
_REGEX_CHARS = frozenset("^$()[]\\+?{}|")
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z", "[:digit:]": "0-9", "[:alnum:]": "a-zA-Z0-9", "[:upper:]": "A-Z", "[:lower:]": "a-z",
    "[:xdigit:]": "0-9A-Fa-f", "[:space:]": r"\s", "[:blank:]": r" \t", "[:punct:]": r"!-/:-@\[-`{-~",
    "[:word:]": r"\w",
}
_SUPPORTED_MODIFIERS = frozenset({"important"})


# ---------------------------------------------------------------- helpers

def _ip(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_ip_or_network(text: str) -> bool:
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=False)
            return True
        except ValueError:
            return False
    return _ip(text) is not None


def _posix_to_python(pattern: str) -> str:
    """POSIX bracket classes ("[[:digit:]]") in Python syntax; the rest of ERE reads the same in `re`."""
    if "[:" in pattern:
        for cls, repl in _POSIX_CLASSES.items():
            pattern = pattern.replace(cls, repl)
    return pattern


def _compiles(pattern: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # FutureWarning for "[[" and friends: still a valid pattern
            re.compile(pattern)
        return True
    except (re.error, RecursionError, OverflowError, ValueError):
        return False


class LineParser:
    """One method per format: takes a stripped non-blank line, returns its rules (counting the rest)."""

    def __init__(self, stats: ParseStats, single_label: bool):
        self.stats = stats
        self.skipped = stats.skipped
        self.single_label = single_label
        self.lineno = 0
        self.line = ""
        self._invalid_line = -1

    # -- bookkeeping

    def invalid(self) -> None:
        if self._invalid_line == self.lineno:
            return
        self._invalid_line = self.lineno
        st = self.stats
        st.invalid += 1
        if len(st.invalid_samples) < INVALID_SAMPLES:
            st.invalid_samples.append((self.lineno, self.line.rstrip("\r\n")[:200]))

    def comment(self) -> None:
        self.stats.comments += 1

    def name(self, token: str) -> Optional[str]:
        """The normalised name, or None after counting why not (localhost, ip-address, invalid)."""
        low = token.lower().rstrip(".")
        if low in LOCAL_NAMES:
            self.skipped["localhost"] += 1
            return None
        numeric_end = low[-1:].isdigit()
        if (numeric_end or ":" in low) and _is_ip_or_network(low):
            self.skipped["ip-address"] += 1
            return None
        try:
            name = normalise_name(low)
        except ValueError:
            self.invalid()
            return None
        # normalise_name takes "1.2.3" or "300.1.1.1" as a name; no top-level domain is all digits
        if name[-1:].isdigit() and name.rpartition(".")[2].isdigit():
            self.invalid()
            return None
        return name

    def name_rule(self, token: str, subdomains: bool, allow: bool = False, important: bool = False) -> Optional[Rule]:
        name = self.name(token)
        if name is None:
            return None
        if subdomains and "." not in name and not self.single_label:
            self.skipped["single-label"] += 1
            return None
        return Rule(name, subdomains, allow, important, None)

    def regex_rule(self, pattern: str, allow: bool = False, important: bool = False) -> Optional[Rule]:
        if not pattern or len(pattern) > MAX_REGEX:
            self.invalid()
            return None
        pattern = _posix_to_python(pattern)
        if not _compiles(pattern):
            self.invalid()
            return None
        # rules are searched in the lower-case name: keep upper-case literals matching
        if re.search(r"(?<!\\)[A-Z]", pattern) and _compiles("(?i)" + pattern):
            pattern = "(?i)" + pattern
        return Rule("", False, allow, important, pattern)

    # -- hosts

    def line_hosts(self, s: str) -> Optional[list[Rule]]:
        if "#" in s:
            s = s.split("#", 1)[0]
        parts = s.split()
        if not parts:
            self.comment()
            return None
        if len(parts) == 1:     # a bare name among hosts lines: an exact name, as in a hosts file
            return self._plain_token(parts[0], False)
        return self._hosts_parts(parts)

    def _hosts_parts(self, parts: list[str]) -> Optional[list[Rule]]:
        addr = parts[0]
        if addr not in _SINKS:
            ip = _ip(addr)
            if ip is None:
                self.invalid()
                return None
            if not (ip.is_unspecified or ip.is_loopback):
                local = all(t.lower().rstrip(".") in LOCAL_NAMES for t in parts[1:])
                self.skipped["localhost" if local else "hosts-mapping"] += 1
                return None
        rules = []
        for token in parts[1:]:
            name = self.name(token)
            if name is not None:
                rules.append(Rule(name, False, False, False, None))
        return rules

    # -- domains and wildcard

    def line_domains(self, s: str) -> Optional[list[Rule]]:
        return self._plain(s, False)

    def line_wildcard(self, s: str) -> Optional[list[Rule]]:
        return self._plain(s, True)

    def _plain(self, s: str, bare_subtree: bool) -> Optional[list[Rule]]:
        if "#" in s:
            s = s.split("#", 1)[0].rstrip()
            if not s:
                self.comment()
                return None
        if " " in s or "\t" in s:
            parts = s.split()
            if _ip(parts[0]) is not None:   # a hosts line in a domain list
                return self._hosts_parts(parts)
            self.invalid()
            return None
        return self._plain_token(s, bare_subtree)

    def _plain_token(self, token: str, bare_subtree: bool) -> Optional[list[Rule]]:
        if token.startswith("*."):
            token, sub = token[2:], True
        elif token.startswith(".") and len(token) > 1:
            token, sub = token[1:], True
        else:
            sub = bare_subtree
        if "*" in token:
            self.skipped["not-a-domain"] += 1
            return None
        rule = self.name_rule(token, sub)
        return [rule] if rule else None

    # -- adblock

    def line_adblock(self, s: str) -> Optional[list[Rule]]:
        c0 = s[0]
        if c0 == "!" or (c0 == "[" and s.endswith("]")):
            self.comment()
            return None
        if c0 == "#":
            if _COSMETIC_START.match(s):
                self.skipped["cosmetic"] += 1
            else:
                self.comment()
            return None
        regex_like = c0 == "/" or s.startswith("@@/")
        if ("#" in s or "$" in s) and not regex_like and _COSMETIC.search(s):
            self.skipped["cosmetic"] += 1
            return None
        allow = s.startswith("@@")
        body = s[2:] if allow else s
        if not body:
            self.invalid()
            return None

        if body[0] == "/":                       # /regex/ or /regex/$modifiers
            end = body.rfind("/")
            if end > 0 and (end == len(body) - 1 or body[end + 1] == "$"):
                important = self._modifiers(body[end + 2:])
                if important is None:
                    return None
                rule = self.regex_rule(body[1:end], allow, important)
                return [rule] if rule else None
            self.skipped["not-a-domain"] += 1    # a path rule ("/ads/banner.")
            return None

        if " " in body or "\t" in body:
            body = _TRAILING_ADBLOCK_COMMENT.sub("", body)   # "||x^$important  # comment"
        pattern, dollar, mods = body.partition("$")
        pattern = pattern.rstrip()
        important = False
        if dollar:
            important = self._modifiers(mods)
            if important is None:
                return None
        if " " in pattern or "\t" in pattern:
            parts = pattern.split()
            if not allow and not dollar and _ip(parts[0]) is not None:
                return self._hosts_parts(parts)  # hosts syntax inside an AdGuard list
            self.invalid()
            return None

        if pattern.startswith("||"):
            anchor, host = "||", pattern[2:]
        elif pattern.startswith("|"):
            anchor, host = "|", pattern[1:]
        else:
            anchor, host = "", pattern
        caret = False
        if host.endswith("^|"):
            host, caret = host[:-2], True
        elif host.endswith(("^", "|")):
            host, caret = host[:-1], True
        if not host:
            self.invalid()
            return None
        if _NOT_HOST.search(host):
            self.skipped["not-a-domain"] += 1
            return None
        if "*" in host or host[0] == ".":
            rule = self._wildcard_regex(host.lower(), anchor, allow, important)
            return [rule] if rule else None
        if anchor == "||":
            sub = True
        elif anchor == "|":
            sub = False
        else:
            sub = caret     # "example.com^" as "||example.com^"; a bare "example.com" is exact (AdGuard)
        rule = self.name_rule(host, sub, allow, important)
        return [rule] if rule else None

    def _modifiers(self, mods: str) -> Optional[bool]:
        """``important`` for a modifier list Hearth supports; None (counted) for one it does not."""
        important = False
        for mod in mods.split(","):
            key = mod.split("=", 1)[0].strip().lower()
            if not key:
                continue
            if key in _SUPPORTED_MODIFIERS:
                important = True
                continue
            self.skipped["modifier:" + key.lstrip("~")] += 1
            return None
        return important

    def _wildcard_regex(self, host: str, anchor: str, allow: bool, important: bool) -> Optional[Rule]:
        """``||ads*.example.com^`` → regex rule ``(?:^|\\.)ads.*\\.example\\.com$``.

        Only when the pattern ends in a fixed name of two labels or more after its last ``*`` (so never a
        whole top-level domain, ``||*.com^``); other shapes are skipped as "not-a-domain".
        """
        if host[0] == ".":
            host = "*" + host                    # ".example.com^": strictly below example.com
        suffix = host.rsplit("*", 1)[-1]
        if not _WILD_HOST.fullmatch(host) or len([lab for lab in suffix.split(".") if lab]) < 2:
            self.skipped["not-a-domain"] += 1
            return None
        start = "^" if anchor == "|" else r"(?:^|\.)"
        core = host
        if core.startswith("*"):
            start, core = "", core.lstrip("*")
        pattern = start + ".*".join(re.escape(part) for part in core.split("*")) + "$"
        return self.regex_rule(pattern, allow, important)

    # -- regex

    def line_regex(self, s: str) -> Optional[list[Rule]]:
        if s[0] == "#":
            self.comment()
            return None
        if "#" in s:
            s = _TRAILING_COMMENT.sub("", s)
        if ";" in s:
            m = _PIHOLE_OPTION.search(s)
            if m:
                self.skipped["modifier:" + m.group(1)] += 1
                return None
        rule = self.regex_rule(s)
        return [rule] if rule else None

    # -- dnsmasq

    def line_dnsmasq(self, s: str) -> Optional[list[Rule]]:
        if s[0] == "#":
            self.comment()
            return None
        if "#" in s and (" " in s or "\t" in s):
            s = _TRAILING_COMMENT.sub("", s)
        key, eq, value = s.partition("=")
        key = key.strip().lstrip("-").lower()
        if key not in ("address", "server", "local"):
            if _DNSMASQ_KEY.fullmatch(key):
                self.skipped["dnsmasq-option"] += 1
            else:
                self.invalid()
            return None
        value = value.strip()
        if not value.startswith("/"):
            self.skipped["dnsmasq-option"] += 1      # server=1.1.1.1: an upstream, not a domain rule
            return None
        parts = value[1:].split("/")
        if len(parts) < 2:
            self.invalid()
            return None
        domains, target = parts[:-1], parts[-1].strip()
        if key == "address":
            if target not in ("", "#") and target not in _SINKS:
                ip = _ip(target)
                if ip is None:
                    self.invalid()
                    return None
                if not (ip.is_unspecified or ip.is_loopback):
                    self.skipped["dnsmasq-address"] += 1  # answers another address: a redirect, not a block
                    return None
        elif target:
            self.skipped["dnsmasq-forward"] += 1          # server=/x/1.2.3.4 or /x/#: resolved elsewhere
            return None
        rules = []
        for domain in domains:
            domain = domain.strip()
            if domain == "#":
                self.skipped["dnsmasq-all"] += 1          # every domain: never from a list
                continue
            if domain.startswith("*."):
                domain = domain[2:]
            elif domain.startswith("."):
                domain = domain[1:]
            if not domain:
                self.skipped["dnsmasq-option"] += 1       # "//": unqualified names
                continue
            rule = self.name_rule(domain, True)
            if rule:
                rules.append(rule)
        return rules
