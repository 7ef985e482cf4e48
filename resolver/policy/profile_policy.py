"""Per-profile policy: what one profile (with its schedules) answers for one name at one instant.

:class:`ProfilePolicy` is built once per profile (and rebuilt when the profile, its schedules, the
compiled lists or the service catalogue change) and asked :meth:`ProfilePolicy.decide` on cache
misses. It holds no per-device state: the device's pause and temporary allows are passed in.

Order of precedence (the first step that applies decides)
---------------------------------------------------------
1. **Bypass signals** (``profile.bypass_prevention``): the DoH canary, iCloud Private Relay and DDR
   names get the negative answer their protocol expects (:func:`resolver.policy.bypass.bypass_answer_wire`):
   block, ``Reason.BYPASS``, ``answer`` "nxdomain" / "nodata". Nothing overrides them.
2. **Paused device** (``paused_until > now``): every name is blocked, ``Reason.PAUSED`` (category
   "device"); ``ttl_cap`` = seconds until the pause ends.
3. **Temporary allow** of the device for the name or a parent (``wikipedia.org`` and
   ``*.wikipedia.org`` both allow ``wikipedia.org`` and ``en.wikipedia.org``; expired ones are
   ignored): allowed, ``ttl_cap`` = seconds until it ends (the latest end when several match).
4. **The profile's allow list** (``x``: that name only; ``*.x``: ``x`` and every subdomain): allowed.
   It beats schedules too ("bedtime blocks everything except the allow list").
5. **An active ``block_all`` window** (bedtime): block, ``Reason.SCHEDULE``, category = schedule name
   (the first such schedule in definition order).
6. **The profile's block list** (same syntax as the allow list): block, ``Reason.CUSTOM``, category =
   the profile's name, rule = the entry that matched as written (``*.x`` or ``x``).
7. **Blocked services** (``profile.services`` and those of active ``block_services`` windows): the
   name or a parent is one of the service's domains (a domain without its subdomains flag matches only
   itself): block, ``Reason.SERVICE``, category = the service's display name ("TikTok"), rule = the
   service domain that matched.
8. **Categories** (``profile.categories`` and those of active ``block_categories`` windows; ``"*"`` =
   every category in the index; mandatory lists always): :meth:`BlockIndex.lookup_wire` with that mask:
   block, ``Reason.CATEGORY`` or ``Reason.MANDATORY`` with the shown category and list ids, exactly as
   :class:`resolver.policy.blocking.Policy` reports them. Where ``bypass`` (or ``"*"``) is blocked and no
   list has the name, the built-in table of public DoH/DoT endpoints (:mod:`resolver.policy.encrypted_dns`)
   is looked up too: category "bypass", its list named "built-in DoH/DoT table".
9. **Used-up time budgets** (:mod:`resolver.policy.budgets`; ``spent``, read from the store's usage): the
   name belongs to a service or category whose budget is used up today, or the "all internet" budget is:
   block, ``Reason.BUDGET`` ("time budget"), category = the service's display name, the category or "all
   internet"; ``ttl_cap`` = seconds until the budget's reset. Anything blocked for good (steps 5-8) keeps
   that reason; allows (3, 4) lift a budget block like any other block (a parent's "15 more minutes" adds
   minutes to the budget instead, so the block ends by itself when the counter sees the new total).
   A name that counts against a budget not yet used up (``spent.watched``: its service, its category, or
   any name under "all internet") is answered with ``ttl_cap`` :data:`resolver.policy.budgets.BUDGET_TTL`
   (60 s), so devices ask again soon and are blocked promptly when the minutes run out.
10. **Safe search** (``profile.safe_search``, ``profile.youtube``): rewrite to the safe host (or, for
   Yandex, the IPv4 address: :func:`resolver.policy.safesearch.is_address_target`), ``Reason.SAFE_SEARCH``,
   category "search" or "youtube". A safe host itself (``forcesafesearch.google.com``) is never
   rewritten.
11. Otherwise allowed.

What an allow (steps 3 and 4) beats, decided here:

* it lifts every *block* of steps 5-9 (bedtime, the block list, services, subscribed categories, budgets)...
* ...except **mandatory lists**: they are the operator's (school, legal), "blocked in every profile"
  whatever the profile says, so an allowed name is still looked up in the mandatory categories and
  blocked (``Reason.MANDATORY``) if listed there;
* it does not switch **safe search** off: safe search is a rewrite, not a block, and the profile's own
  switch controls it. Allowing ``youtube.com`` (to lift a "video" block) keeps YouTube's Restricted
  Mode; a temporary allow does the same;
* it never beats bypass signals (1) or a pause (2).

TTL caps
--------
A verdict's ``ttl_cap`` is the number of seconds its answer may be cached by anyone (the engine's cache
and the device's). When the profile has schedules, *every* verdict carries the seconds until the next
instant the set of active windows changes (:meth:`WeeklySchedule.next_change`), so no cached answer
outlives a window; a pause or a temporary allow that decided the verdict caps it at its own end; a name
that counts against a time budget is capped at :data:`~resolver.policy.budgets.BUDGET_TTL` (step 9); the
smallest cap wins. Caps are whole seconds, rounded up, at least 1. ``None`` = no cap.

Cost
----
Allow list, block list and service domains are merged into one dict keyed by uncompressed wire names;
``decide`` walks the suffixes of the query's wire name once, one dict lookup each. The schedule state
(active windows, next change) is memoised for the current second, and the blocked services and the
category mask are memoised per distinct set of active windows. Schedule boundaries fall on whole
seconds, so the state at ``floor(now)`` holds for the whole second.

``name_wire`` is a lower-case, uncompressed wire name ending at its zero byte (nothing after it). A
malformed one is matched as far as it can be read and is never blocked by the lists for it.

One module over 500 lines on purpose: the order of precedence above is one function, ``decide``, and
the state it memoises; splitting the steps apart would hide the order that is the point.
"""
from __future__ import annotations

import logging
import math
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Tuple

from blocklists import index as block_index
from blocklists.manager import MANDATORY_PREFIX

from resolver.policy.bypass import BYPASS_ANSWERS_WIRE as _BYPASS_WIRE
from resolver.policy.encrypted_dns import TABLE_NAME, encrypted_dns_matcher
from resolver.base.names import normalise_name, wire_name
from resolver.policy.blocking import Decision, Reason, _text_name
from resolver.policy.budgets import ALL, BUDGET_TTL, Spent
from resolver.policy.profiles import ALL_CATEGORIES, Profile, Schedule
from resolver.policy.safesearch import SAFE_HOSTS, YOUTUBE_MODERATE, YOUTUBE_STRICT, safe_target_table
from resolver.policy.schedule import WeeklySchedule, Window, parse_hhmm

if TYPE_CHECKING:  # pragma: no cover
    from blocklists.index import BlockIndex

__all__ = ["Verdict", "ProfilePolicy", "ALLOW", "BLOCK", "REWRITE"]

log = logging.getLogger(__name__)

ALLOW, BLOCK, REWRITE = "allow", "block", "rewrite"

BYPASS_CATEGORY = "bypass"   # the category of public DoH/DoT/VPN/proxy hosts
_EXACT, _SUB = 1, 2          # an allow/block entry for the name itself / for the name and its subdomains
_CACHE_MAX = 1024            # memo sizes (temporary-allow domains, active-window sets)


class Verdict(NamedTuple):
    action: str                     # "allow" | "block" | "rewrite"
    decision: Optional[Decision]    # why (for block and rewrite), None for a plain allow
    target: Optional[str] = None    # rewrite target: a safe-search host name, or an IPv4 address (Yandex)
    ttl_cap: Optional[int] = None   # seconds the answer may be cached by anyone; None = no cap


_PLAIN_ALLOW = Verdict(ALLOW, None)
_NOTHING_LISTED = (False, None, None)   # _walk's answer for a profile without allow, block or service entries


class _State(NamedTuple):
    """What the active windows add to the profile: ``block_all`` = the name of the first active
    block_all schedule (or None), the blocked service ids, the category mask, and whether the
    ``bypass`` category is blocked (then the built-in encrypted-DNS table applies too)."""
    block_all: Optional[str]
    services: FrozenSet[str]
    mask: int
    doh: bool = False


# One merged entry per domain: (text, "*."+text, allow bits, block bits, service ids matching the domain
# only, service ids matching it and its subdomains).
_Entry = Tuple[str, str, int, int, Tuple[str, ...], Tuple[str, ...]]


_wire = lru_cache(maxsize=65536)(wire_name)   # every profile's policy converts the same catalogue


@lru_cache(maxsize=65536)
def _service_name(domain: str) -> Optional[str]:
    """A catalogue domain normalised (memoised: every profile's policy walks the same catalogue)."""
    try:
        return normalise_name(domain)
    except ValueError:
        return None


def _seconds(until: float, now: float) -> int:
    return max(1, math.ceil(until - now))


def _label_start(w: bytes, k: int) -> bool:
    """Whether offset ``k`` of wire name ``w`` is the length byte of one of its labels (or its root)."""
    off = 0
    try:
        while off < k:
            ln = w[off]
            if not ln:
                return False
            off += ln + 1
    except IndexError:
        return False
    return off == k


_SAFE_HOST_WIRES: FrozenSet[bytes] = frozenset(_wire(h) for h in SAFE_HOSTS)
_YOUTUBE_TARGETS = frozenset({YOUTUBE_STRICT, YOUTUBE_MODERATE})


class ProfilePolicy:
    """The policy of one profile. See the module docstring for the order of precedence.

    ``meta`` maps each index category to ``{"category": shown name, "lists": [ids], "mandatory": bool}``
    (as written beside the index; an index category missing from it counts as mandatory when it starts
    with ``mandatory:``). ``schedules`` may hold other profiles' schedules: only the enabled ones of
    this profile (its name compared ignoring ASCII case) are used. ``tz`` is the IANA zone the schedules'
    times are in. ``services`` maps service ids to :class:`blocklists.services.Service` (default: the
    bundled catalogue); ids the catalogue does not know block nothing (and are logged once).
    """

    # read by blocklists/_indexscan.c's policy_decide
    _bypass_wire = _BYPASS_WIRE
    _safe_host_wires = _SAFE_HOST_WIRES
    _plain_allow = _PLAIN_ALLOW

    def __init__(self, profile: Profile, index: Optional[BlockIndex], meta: dict, schedules: Iterable[Schedule],
                 tz: str, services: Optional[dict] = None, spent: Optional[Spent] = None):
        self.profile = profile
        fast = getattr(block_index.accel, "policy_decide", None)
        if fast is not None:   # the usual name's verdict in C (it calls the method for the rest)
            self.decide = partial(fast, self)
        self.index = index
        self._bypass = profile.bypass_prevention
        self._safe_search = profile.safe_search
        self._youtube = profile.youtube
        self._rewrites = profile.safe_search or profile.youtube != "off"
        self._doh_match = encrypted_dns_matcher()   # the built-in DoH/DoT table (in C when built)
        self._safe_targets = safe_target_table(profile.safe_search, profile.youtube)   # wire name -> safe host

        # --- schedules
        own = _ascii_lower(profile.name)
        mine = [s for s in schedules if s.enabled and _ascii_lower(s.profile) == own]
        windows = [Window(s.days, parse_hhmm(s.start), parse_hhmm(s.end), tag=s) for s in mine]
        self._weekly: Optional[WeeklySchedule] = WeeklySchedule(windows, tz) if windows else None

        # --- categories: (bit, shown name, mandatory) per index category, and the decision fields
        self._bits: List[Tuple[int, str, bool]] = []
        self._cat_info: Dict[str, Tuple[str, bool, str, str]] = {}
        self.mandatory_mask = 0
        meta = meta or {}
        for bit, name in enumerate(index.categories if index is not None else ()):
            info = meta.get(name)
            if info is None:
                mandatory = name.startswith(MANDATORY_PREFIX)
                info = {"category": name[len(MANDATORY_PREFIX):] if mandatory else name, "lists": [],
                        "mandatory": mandatory}
            shown, mandatory = info.get("category", name), bool(info.get("mandatory"))
            self._bits.append((bit, shown, mandatory))
            self._cat_info[name] = (shown, mandatory, ",".join(info.get("lists", []))[:80],
                                    "; ".join(info.get("orders", []))[:160] if mandatory else "")
            if mandatory:
                self.mandatory_mask |= 1 << bit
        self._masks: Dict[FrozenSet[str], int] = {}

        # --- services that can ever be blocked: the profile's and those of its block_services schedules
        wanted = set(profile.services)
        for s in mine:
            if s.action == "block_services":
                wanted.update(s.services)
        if services is None and wanted:
            from blocklists.services import load_services
            services = load_services()
        services = services or {}
        unknown = sorted(wanted - set(services))
        if unknown:
            log.warning("profile %s: unknown services %s block nothing", profile.name, ", ".join(unknown))
        self._service_names: Dict[str, str] = {sid: services[sid].name or sid for sid in wanted if sid in services}

        # --- one dict for the allow list, the block list and the service domains
        acc: Dict[str, list] = {}

        def entry(name: str) -> list:
            e = acc.get(name)
            if e is None:
                e = acc[name] = [name, "*." + name, 0, 0, [], []]
            return e

        for item in profile.allow:
            sub = item.startswith("*.")
            entry(item[2:] if sub else item)[2] |= _SUB if sub else _EXACT
        for item in profile.block:
            sub = item.startswith("*.")
            entry(item[2:] if sub else item)[3] |= _SUB if sub else _EXACT
        for sid in sorted(self._service_names):
            for domain, subdomains in services[sid].domains:
                name = _service_name(domain)
                if name is None:
                    continue
                ids = entry(name)[5 if subdomains else 4]
                if sid not in ids:
                    ids.append(sid)
        self._domains: Dict[bytes, _Entry] = {
            _wire(name): (e[0], e[1], e[2], e[3], tuple(e[4]), tuple(e[5])) for name, e in acc.items()}

        # --- time budgets (step 9): the used-up ones block, the others cap their names' TTL
        self._spent = spent if spent is not None and (spent.used_up or spent.watched) else None
        self._spent_domains: Dict[bytes, Tuple[str, float]] = {}
        self._spent_mask = 0
        self._watch_domains: Dict[bytes, bool] = {}   # service domains with a budget -> subdomains too
        self._watch_mask = 0
        self._watch_all = False
        if self._spent is not None:
            watched_services = [t[8:] for t in spent.watched if t.startswith("service:")]
            if (spent.services or watched_services) and not services:
                from blocklists.services import load_services
                services = load_services()
            for sid, until in spent.services.items():
                if sid in (services or {}):
                    for domain, _sub in services[sid].domains:
                        name = _service_name(domain)
                        if name is not None:
                            self._spent_domains[_wire(name)] = (services[sid].name or sid, until)
            for sid in watched_services:
                for domain, sub in (services or {})[sid].domains if sid in (services or {}) else ():
                    name = _service_name(domain)
                    if name is not None:
                        self._watch_domains[_wire(name)] = sub or self._watch_domains.get(_wire(name), False)
            watched_cats = {t[9:] for t in spent.watched if t.startswith("category:")}
            for bit, shown, _mandatory in self._bits:
                if shown in spent.categories:
                    self._spent_mask |= 1 << bit
                if shown in watched_cats:
                    self._watch_mask |= 1 << bit
            self._watch_all = ALL in spent.watched

        # --- the state without windows, and the memos
        self._base = self._make_state(())
        self._states: Dict[tuple, _State] = {}
        self._memo: Optional[Tuple[int, _State, Optional[float]]] = None   # (second, state, next change)
        self._temp_wire: Dict[str, bytes] = {}
        self._capped_allow = _PLAIN_ALLOW   # the last capped allow verdict (verdicts are immutable, shared)

    # ------------------------------------------------------------------ public

    @property
    def uses_time(self) -> bool:
        """True when the profile has (enabled) schedules: its answers depend on the clock."""
        return self._weekly is not None

    def decide(self, name_wire: bytes, now: float, paused_until: Optional[float] = None,
               temp_allows: Iterable[Tuple[str, float]] = ()) -> Verdict:
        """The verdict for a lower-case uncompressed wire name at UNIX time ``now``, for a device paused
        until ``paused_until`` (if that is later than now) with temporary allows ``(domain, until)``."""
        w = name_wire
        if self._weekly is None:
            state, cap = self._base, None
        else:
            memo = self._memo   # self._state(now), its memo of the current second inlined (every query asks)
            if memo is not None and memo[0] == math.floor(now):
                state, change = memo[1], memo[2]
            else:
                state, change = self._state(now)
            cap = None if change is None else max(1, math.ceil(change - now))   # _seconds(change, now)

        # 1. bypass signals
        if self._bypass:
            signal = _BYPASS_WIRE.get(w)   # bypass_answer_wire(w)
            if signal is not None:
                return Verdict(BLOCK, Decision(Reason.BYPASS, "bypass", _text_name(w), answer=signal), None, cap)

        # 2. paused device
        if paused_until is not None and paused_until > now:
            pause = _seconds(paused_until, now)
            return Verdict(BLOCK, Decision(Reason.PAUSED, "device", _text_name(w)), None,
                           pause if cap is None or pause < cap else cap)

        # 3. temporary allow
        allowed = False
        if temp_allows:
            until = self._temp_allow_until(w, now, temp_allows)
            if until is not None:
                allowed = True
                left = _seconds(until, now)
                if cap is None or left < cap:
                    cap = left

        if not allowed:
            # one walk over the suffixes: allow list (4), block list (6), services (7)
            allow, rule, service = self._walk(w, state.services) if self._domains else _NOTHING_LISTED
            if allow:
                allowed = True                                                          # 4. allow list
            elif state.block_all is not None:                                          # 5. block_all window
                return Verdict(BLOCK, Decision(Reason.SCHEDULE, state.block_all, _text_name(w)), None, cap)
            elif rule is not None:                                                     # 6. block list
                return Verdict(BLOCK, Decision(Reason.CUSTOM, self.profile.name, rule), None, cap)
            elif service is not None:                                                  # 7. services
                sid, domain = service
                return Verdict(BLOCK, Decision(Reason.SERVICE, self._service_names[sid], domain), None, cap)
            else:                                                                      # 8. categories
                match = self.index.lookup_wire(w, state.mask) if state.mask and self.index is not None else None
                decision = None if match is None else self._decision(match)
                if decision is None and state.doh:
                    entry = self._doh_match(w)
                    if entry is not None:
                        decision = _encrypted_dns(entry)
                if decision is not None:
                    return Verdict(BLOCK, decision, None, cap)
        if allowed and self.mandatory_mask and self.index is not None:                 # allows never beat
            decision = self._lookup(w, self.mandatory_mask)                            # mandatory lists
            if decision is not None:
                return Verdict(BLOCK, decision, None, cap)

        # 9. time budgets: used up -> blocked; still running -> a short TTL
        if self._spent is not None and not allowed:
            verdict = self._budget(w, now, cap)
            if verdict is not None:
                return verdict
            if (cap is None or cap > BUDGET_TTL) and self._watched(w):
                cap = BUDGET_TTL

        # 10. safe search
        if self._rewrites and w not in _SAFE_HOST_WIRES:
            target = self._safe_targets.get(w)
            if target is not None:
                kind = "youtube" if target in _YOUTUBE_TARGETS else "search"
                return Verdict(REWRITE, Decision(Reason.SAFE_SEARCH, kind, _text_name(w)), target, cap)

        # 11. allowed (under a cap: the same verdict object for every name while the cap is the same)
        if cap is None:
            return _PLAIN_ALLOW
        verdict = self._capped_allow
        if verdict.ttl_cap != cap:
            verdict = self._capped_allow = Verdict(ALLOW, None, None, cap)
        return verdict

    # ------------------------------------------------------------------ internals

    def _walk(self, w: bytes, services: FrozenSet[str]) -> Tuple[bool, Optional[str], Optional[Tuple[str, str]]]:
        """(allow-listed, the block-list entry that matched, (service id, service domain) blocked)."""
        domains = self._domains
        if not domains:
            return False, None, None
        get = domains.get
        rule = None
        service = None
        off = 0
        try:
            ln = w[0]
            while ln:
                e = get(w[off:])
                if e is not None:
                    bits = _SUB if off else _SUB | _EXACT
                    if e[2] & bits:
                        return True, None, None
                    if rule is None and e[3] & bits:
                        rule = e[0] if not off and e[3] & _EXACT else e[1]
                    if service is None and services:
                        for sid in e[5]:
                            if sid in services:
                                service = (sid, e[0])
                                break
                        if service is None and not off:
                            for sid in e[4]:
                                if sid in services:
                                    service = (sid, e[0])
                                    break
                off += ln + 1
                ln = w[off]
        except IndexError:
            pass
        return False, rule, service

    def _budget(self, w: bytes, now: float, cap: Optional[int]) -> Optional[Verdict]:
        """Step 9: the block of a used-up budget covering ``w`` (a service, a category, all internet)."""
        spent = self._spent
        hit: Optional[Tuple[str, float]] = None
        if self._spent_domains:
            get = self._spent_domains.get
            off = 0
            try:
                ln = w[0]
                while ln and hit is None:
                    hit = get(w[off:])
                    off += ln + 1
                    ln = w[off]
            except IndexError:
                pass
        if hit is None and self._spent_mask and self.index is not None:
            match = self.index.lookup_wire(w, self._spent_mask)
            if match is not None:
                shown = self._cat_info.get(match.category, (match.category,))[0]
                hit = (shown, spent.categories.get(shown, now + 60))
        if hit is None and spent.all_until is not None:
            hit = ("all internet", spent.all_until)
        if hit is None or hit[1] <= now:
            return None
        left = _seconds(hit[1], now)
        return Verdict(BLOCK, Decision(Reason.BUDGET, hit[0], _text_name(w)), None,
                       left if cap is None or left < cap else cap)

    def _watched(self, w: bytes) -> bool:
        """``w`` counts against one of the profile's budgets (a service's domain, a category, all internet)."""
        if self._watch_all:
            return True
        if self._watch_domains:
            get = self._watch_domains.get
            off = 0
            try:
                ln = w[0]
                while ln:
                    sub = get(w[off:])
                    if sub is not None and (sub or not off):
                        return True
                    off += ln + 1
                    ln = w[off]
            except IndexError:
                pass
        return bool(self._watch_mask and self.index is not None and self.index.lookup_wire(w, self._watch_mask))

    def _lookup(self, w: bytes, mask: int) -> Optional[Decision]:
        match = self.index.lookup_wire(w, mask)
        return None if match is None else self._decision(match)

    def _decision(self, match) -> Decision:
        """The decision for a block-index match: the category as the profile shows it, and its lists or order."""
        shown, mandatory, lists, orders = self._cat_info.get(match.category, (match.category, False, "", ""))
        if orders:
            return Decision(Reason.ORDER, shown, match.rule, orders)
        return Decision(Reason.MANDATORY if mandatory else Reason.CATEGORY, shown, match.rule, lists)

    def _temp_allow_until(self, w: bytes, now: float, temp_allows: Iterable[Tuple[str, float]]) -> Optional[float]:
        """The latest end of the unexpired temporary allows matching ``w`` or a parent, or None."""
        best = None
        n = len(w)
        cache = self._temp_wire
        for domain, until in temp_allows:
            if until <= now or (best is not None and until <= best):
                continue
            dw = cache.get(domain)
            if dw is None:
                dw = self._domain_wire(domain)
            if not dw or not w.endswith(dw):
                continue
            k = n - len(dw)
            if k and not _label_start(w, k):
                continue
            best = until
        return best

    def _domain_wire(self, domain: str) -> bytes:
        """The wire form of a temporary allow's domain (``*.`` dropped; b"" if it is not a name), memoised."""
        try:
            name = normalise_name(domain, wildcard=True)
            dw = _wire(name[2:] if name.startswith("*.") else name)
        except (ValueError, TypeError, UnicodeError):
            dw = b""
        if len(self._temp_wire) >= _CACHE_MAX:
            self._temp_wire.clear()
        self._temp_wire[domain] = dw
        return dw

    def _state(self, now: float) -> Tuple[_State, Optional[float]]:
        """The state and next change at ``now``, memoised for the current second."""
        sec = math.floor(now)
        memo = self._memo
        if memo is not None and memo[0] == sec:
            return memo[1], memo[2]
        windows, change = self._weekly.state(sec)
        key = tuple(windows)
        state = self._states.get(key)
        if state is None:
            if len(self._states) >= _CACHE_MAX:
                self._states.clear()
            state = self._states[key] = self._make_state(windows)
        self._memo = (sec, state, change)
        return state, change

    def _make_state(self, windows: Iterable[Window]) -> _State:
        block_all = None
        services = set(self.profile.services)
        categories = set(self.profile.categories)
        for win in windows:
            sched = win.tag
            if sched.action == "block_all":
                if block_all is None:
                    block_all = sched.name
            elif sched.action == "block_services":
                services.update(sched.services)
            elif sched.action == "block_categories":
                categories.update(sched.categories)
        return _State(block_all, frozenset(s for s in services if s in self._service_names),
                      self._mask(frozenset(categories)), BYPASS_CATEGORY in categories or ALL_CATEGORIES in categories)

    def _mask(self, categories: FrozenSet[str]) -> int:
        mask = self._masks.get(categories)
        if mask is None:
            everything = ALL_CATEGORIES in categories
            mask = 0
            for bit, shown, mandatory in self._bits:
                if mandatory or everything or shown in categories:
                    mask |= 1 << bit
            self._masks[categories] = mask
        return mask


def _encrypted_dns(entry: str) -> Decision:
    """The built-in table's block of a public DoH/DoT endpoint (when the lists did not have it): ``entry`` is
    the table's entry the name is or is under (:func:`resolver.policy.encrypted_dns.encrypted_dns_match`)."""
    return Decision(Reason.CATEGORY, BYPASS_CATEGORY, entry, TABLE_NAME)


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
