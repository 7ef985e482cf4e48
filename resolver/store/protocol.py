"""The narrow interface every part of Hearth uses to reach its store.

The engine, the CLI and the web UI call these methods and never write SQL.
SQLite (``sqlite.py``) is the embedded default; a PostgreSQL backend
implements the same protocol and passes the same contract tests.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Protocol, Sequence

from resolver.policy.budgets import Budget, BudgetUsage
from resolver.policy.profiles import Device, Profile, Schedule, SeenClient, TempAllow


class SchemaTooNewError(RuntimeError):
    """The store was written by a newer Hearth (its schema version is past this code's migrations)."""


class StoreUnavailable(RuntimeError):
    """The store's database cannot be reached (a shared PostgreSQL store that is down): one line, fit to show.
    Reads and writes raise it; nothing was written."""


class QueryRow(NamedTuple):
    """One answered query, as the query log keeps it."""

    ts: float            # UNIX time
    client: str
    qname: str
    qtype: int
    rcode: int
    answer: str          # short summary of the answers
    upstream: str        # upstream URL that answered, "" for cache/local/blocked
    latency_ms: float
    cached: bool
    reason: Optional[str]  # why it was blocked/rewritten/answered locally, None for plain forwarding
    node: str = ""       # the node that answered (node_name, in a store several nodes share; "" when not named)


# The reasons (QueryRow.reason up to the first ":") of a blocked answer; the others ("local-record",
# "safe-search:…") and None are answered. The values are resolver.policy.blocking.Reason's.
BLOCK_REASONS: tuple[str, ...] = ("category", "mandatory", "order", "bypass", "paused", "schedule", "custom-rule",
                                  "service", "time-budget")
ROLES: tuple[str, ...] = ("admin", "viewer")
REQUEST_STATUSES: tuple[str, ...] = ("pending", "approved", "declined")


def is_blocked(reason: Optional[str]) -> bool:
    """Whether a query-log reason means the answer was blocked."""
    return bool(reason) and reason.split(":", 1)[0] in BLOCK_REASONS


class LoggedQuery(NamedTuple):
    """A query-log row with its id (ids grow with time: a live tail asks for rows after the last id)."""

    id: int
    row: QueryRow


class HourCount(NamedTuple):
    hour: float          # UNIX time of the start of the hour (UTC hour boundary)
    total: int
    blocked: int


class NameCount(NamedTuple):
    name: str            # a domain or a client address
    total: int
    blocked: int


class User(NamedTuple):
    """A web UI account. ``role``: "admin" (may change things) or "viewer" (read only)."""

    id: int
    name: str
    role: str
    password_hash: str   # werkzeug's hash ("scrypt:…"), never the password
    language: str        # "" (the appliance's default) or a language code
    created: float
    last_login: Optional[float]


class ApiToken(NamedTuple):
    id: int
    user: str
    label: str
    created: float
    last_used: Optional[float]


class AuditEntry(NamedTuple):
    """One change made through the UI, the API or the CLI: who, when, what, before and after (JSON values)."""

    id: int
    ts: float
    user: str
    action: str          # e.g. "profile.update", "device.pause", "request.approve"
    target: str          # e.g. the profile's name
    before: Any          # decoded JSON, None for a creation
    after: Any           # decoded JSON, None for a removal
    node: str = ""       # the node the change was made on ("" when not named)


class AccessRequest(NamedTuple):
    """A child's "ask for access" from the block page and the parent's answer."""

    id: int
    ts: float
    client: str          # the asking device's address
    device: str          # its device name, "" when unknown
    profile: str         # its profile when asked
    domain: str          # the blocked name
    reason: str          # why it was blocked, in the engine's words ("" when unknown)
    message: str         # the child's message
    status: str          # pending | approved | declined
    decision: str        # "" | "30m" | "day" | "always" | "declined"
    decided_by: str
    decided_ts: Optional[float]
    until: Optional[float]   # end of a temporary approval


class HarmReport(NamedTuple):
    """A "report a harmful site" form, as sent (no login: anyone on the LAN)."""

    id: int
    ts: float
    client: str
    url: str
    kind: str            # the kind of harm, one of the form's choices
    contact: str         # optional
    message: str         # optional
    device: str = ""     # the sending device's name when it was sent ("" when unknown)
    handled_ts: Optional[float] = None   # when a parent marked it handled (None: new)
    handled_by: str = ""
    forwarded_ts: Optional[float] = None  # when it was forwarded to the list provider (None: not forwarded)
    lang: str = ""       # the UI language it was filed in (vi, en)


class Store(Protocol):
    def migrate(self) -> int:
        """Bring the schema to the current version; returns it. Raises SchemaTooNewError for a store
        written by a newer Hearth."""

    def schema_version(self) -> int: ...

    def add_queries(self, rows: Sequence[QueryRow]) -> None:
        """Append answered queries and count them into the hourly roll-ups (the statistics below), in the
        same transaction: statistics never read the raw rows, so they survive the log's limits."""

    def names_unsettled(self, now: float) -> bool:
        """Whether the names roll-up still has, in memory, an hour over by ``now`` (UNIX time) whose most asked
        names are not all written (see resolver/store/names_tally.py)."""

    def settle_names(self, now: Optional[float] = None) -> int:
        """Write the most asked names of the hours over by ``now`` (None: every hour counted, at shutdown);
        returns the roll-up rows added."""

    def recent_queries(self, limit: int = 100, *, client: Optional[str] = None,
                       qname_contains: Optional[str] = None) -> list[QueryRow]: ...

    def purge_queries(self, older_than: float) -> int:
        """Delete query-log rows older than ``older_than`` (UNIX time; rows are taken in the order they were
        added); returns how many. The roll-ups keep their counts."""

    def cap_queries(self, max_rows: int) -> int:
        """Delete the oldest query-log rows beyond the newest ``max_rows``; returns how many."""

    def count_queries(self) -> int:
        """Rows in the query log."""

    def purge_query_stats(self, older_than: float, *, clients_older_than: Optional[float] = None) -> int:
        """Delete roll-up hours before the hour of ``older_than``; per-client name counts (the device
        reports' top names, the biggest roll-up) already before ``clients_older_than`` when it is later.
        Returns the roll-up rows deleted."""

    # -- profiles ------------------------------------------------------------------------------
    # Methods below refuse bad input with ValueError (one line, fit to show): unknown names
    # ("unknown profile 'x'", "unknown device 'x'"), duplicates, identity conflicts, removing the
    # default profile or a profile devices use. Names are unique ignoring case, and looked up so.
    # Every successful change below (not the query log, not touch_seen) changes policy_version().

    def add_profile(self, profile: Profile) -> Profile:
        """Store a new profile; returns it with ``id`` and ``updated`` set."""

    def update_profile(self, profile: Profile) -> Profile:
        """Replace the profile with ``profile.id`` (which may rename it) or, without an id, the one named
        ``profile.name``. The default profile can be edited but not renamed."""

    def get_profile(self, name: str) -> Optional[Profile]: ...

    def list_profiles(self) -> list[Profile]:
        """All profiles, by name."""

    def remove_profile(self, name: str) -> None:
        """Refused for "default" and for a profile that devices use (the message names them);
        the profile's schedules go with it."""

    # -- devices -------------------------------------------------------------------------------

    def add_device(self, device: Device) -> Device:
        """Store a new device (its ``profile`` must exist). Two devices may not share an IP, a MAC or
        a CIDR; a CIDR may contain another device's IP (the most specific wins)."""

    def update_device(self, device: Device) -> Device:
        """Replace the device with ``device.id`` (may rename it) or, without an id, the one named
        ``device.name``. ``first_seen``/``last_seen`` are kept by the store and not written."""

    def get_device(self, name: str) -> Optional[Device]: ...

    def list_devices(self) -> list[Device]:
        """All devices, by name."""

    def find_devices(self, search: str = "", *, limit: int = 50, offset: int = 0, paused_at: Optional[float] = None,
                     values: Optional[Sequence[str]] = None, kind: Optional[str] = None) -> list[Device]:
        """A page of the devices, by name: ``limit`` of them after the first ``offset``. ``search`` keeps the
        ones whose name, address (IP, network, MAC), host name or profile contains it (ignoring case);
        ``paused_at`` the ones paused at that time (UNIX time); ``values`` the ones whose identity (IP, CIDR,
        MAC as stored) is one of them; ``kind`` those of one kind (ip, cidr, mac). A campus has thousands of
        devices: pages, not lists."""

    def count_devices(self, search: str = "", *, paused_at: Optional[float] = None,
                      values: Optional[Sequence[str]] = None, kind: Optional[str] = None) -> int:
        """How many devices :meth:`find_devices` would page through with the same filter."""

    def remove_device(self, name: str) -> None:
        """The device's temporary allows go with it."""

    def set_pause(self, device_name: str, until: Optional[float]) -> None:
        """Pause the device's internet until ``until`` (UNIX time); ``None`` resumes it."""

    # -- schedules -----------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule) -> Schedule:
        """Store a new schedule; names are unique within a profile."""

    def update_schedule(self, schedule: Schedule) -> Schedule:
        """Replace the schedule with ``schedule.id`` or, without an id, the one with its profile and name."""

    def list_schedules(self, profile: Optional[str] = None) -> list[Schedule]:
        """A profile's schedules (all profiles' with None), by profile then name."""

    def remove_schedule(self, profile: str, name: str) -> None: ...

    # -- temporary allows ----------------------------------------------------------------------

    def add_temp_allow(self, allow: TempAllow) -> TempAllow:
        """Allow a domain for a device until ``allow.until``; allowing the same domain again for the
        same device replaces its ``until``."""

    def list_temp_allows(self, now: float) -> list[TempAllow]:
        """The allows still in force at ``now``, soonest to expire first."""

    def remove_temp_allow(self, allow_id: int) -> None: ...

    def purge_temp_allows(self, now: float) -> int:
        """Delete the allows expired at ``now``; returns how many."""

    # -- seen clients --------------------------------------------------------------------------

    def touch_seen(self, address: str, mac: str, hostname: str, now: float) -> None:
        """Record that client ``address`` (with ``mac``/``hostname`` when known, "" otherwise) was seen at
        ``now``, and advance the seen times of the device with that IP or MAC. One small transaction:
        call it once per client per flush, not per query. Does not change policy_version()."""

    def list_seen(self, limit: int = 200) -> list[SeenClient]:
        """Seen clients, most recently first seen first."""

    # -- time budgets (resolver/store/budget_rooms.py) ----------------------------

    def set_budget(self, budget: Budget) -> Budget:
        """Add the profile's budget for ``budget.target`` or replace it (policy_version goes up)."""

    def list_budgets(self, profile: Optional[str] = None) -> list[Budget]:
        """A profile's budgets (all profiles' with None), by profile then target."""

    def remove_budget(self, profile: str, target: str) -> None: ...

    def budget_usage(self, since_day: str = "", profile: Optional[str] = None) -> list[BudgetUsage]:
        """Usage rows of budget days on or after ``since_day`` (ISO date), by profile, target, day."""

    def save_budget_usage(self, rows: Sequence[BudgetUsage], *, bump: bool = False) -> int:
        """Write counted minutes (keeps the parent's extra minutes); ``bump``: policy_version goes up."""

    def count_budget_minutes(self, activity: Sequence[tuple[str, str, int]], tz: Any) -> list[BudgetUsage]:
        """Add one node's active minutes (profile, target, UNIX minute) to every node's stored count (a minute
        counts once); the changed rows back; policy_version goes up when a budget is used up."""

    def add_budget_extra(self, profile: str, target: str, day: str, minutes: int) -> BudgetUsage:
        """Add a parent's extra minutes to one budget day (policy_version goes up)."""

    def budget_high_water(self) -> Optional[float]:
        """The newest time a usage row was updated (the budgets' clock high-water mark), None if none."""

    def activity_rows(self, clients: Sequence[str], since: float, until: float) -> list[tuple]:
        """(UNIX time, client, name, reason) of these clients' query-log entries in [since, until), in order."""

    # -- change detection ----------------------------------------------------------------------

    def policy_version(self) -> int:
        """A number that changes with every change to profiles, devices, schedules, pauses and temporary
        allows, whichever process makes it. The engine polls it to reload its policy."""

    # -- web UI: statistics over the query log ------------------------------------------------------
    # ``clients``: only these addresses (None: all). Blocked means is_blocked(reason).
    # All but query_page read the hourly roll-ups that add_queries keeps: ``since`` counts from the start
    # of its hour. Top names are exact while a client asks fewer than 30 names in an hour (200 for all
    # clients together); past that, an hour that is over keeps only its most asked names.

    def query_page(self, limit: int = 100, *, clients: Optional[Sequence[str]] = None,
                   qname_contains: Optional[str] = None, blocked: Optional[bool] = None,
                   after_id: Optional[int] = None, before_id: Optional[int] = None,
                   node: Optional[str] = None) -> list[LoggedQuery]:
        """Newest first; ``after_id`` for a live tail, ``before_id`` for the next page; ``node``: only the rows
        that node answered. Rows are stamped with the writing store's node name (its ``node`` attribute)."""

    def hourly_counts(self, since: float, until: float, *,
                      clients: Optional[Sequence[str]] = None) -> list[HourCount]:
        """Per hour from ``since`` to ``until`` (hours without queries included, as zeros), oldest first."""

    def top_domains(self, since: float, limit: int = 10, *, blocked: Optional[bool] = None,
                    clients: Optional[Sequence[str]] = None) -> list[NameCount]:
        """The most asked names since ``since`` (only blocked / only answered ones with ``blocked``)."""

    def top_clients(self, since: float, limit: int = 10, *, blocked: bool = False) -> list[NameCount]:
        """The busiest client addresses since ``since``; with ``blocked``, the ones with the most blocked
        queries (only those with any)."""

    def count_clients(self, since: float) -> int:
        """How many distinct client addresses asked since ``since``."""

    def online_minutes(self, since: float, until: float, *, clients: Sequence[str],
                       bucket: int = 300) -> list[HourCount]:
        """Per hour (as hourly_counts): ``total`` = minutes with activity (in ``bucket``-second steps),
        ``blocked`` = blocked queries. A rough "time online"."""

    def reason_counts(self, since: float, *, clients: Optional[Sequence[str]] = None) -> dict[str, int]:
        """Queries since ``since`` by reason ("category:adult", "local-record", … and "" for plain
        answers), most first."""

    # -- web UI: settings the UI owns (JSON values) ------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any: ...

    def set_setting(self, key: str, value: Any) -> None: ...

    # -- web UI: users, API tokens, login attempts --------------------------------------------------
    # Names are 1-40 characters (as profile names), unique ignoring case. ValueError as above.

    def add_user(self, name: str, password_hash: str, role: str = "admin", language: str = "",
                 now: Optional[float] = None) -> User: ...

    def get_user(self, name: str) -> Optional[User]: ...

    def get_user_by_id(self, user_id: int) -> Optional[User]: ...

    def list_users(self) -> list[User]:
        """All users, by name."""

    def update_user(self, name: str, *, password_hash: Optional[str] = None, role: Optional[str] = None,
                    language: Optional[str] = None, last_login: Optional[float] = None) -> User:
        """Refuses to take the last admin's admin role."""

    def remove_user(self, name: str) -> None:
        """Refused for the last admin; the user's API tokens go with it."""

    def count_users(self) -> int: ...

    def add_api_token(self, user: str, token_hash: str, label: str = "", now: Optional[float] = None) -> ApiToken:
        """Store the hash (sha256 hex) of a new token; the token itself is shown once and never stored."""

    def user_for_token(self, token_hash: str, now: Optional[float] = None) -> Optional[User]:
        """The user a token belongs to (and note its use), or None."""

    def list_api_tokens(self, user: Optional[str] = None) -> list[ApiToken]: ...

    def remove_api_token(self, token_id: int) -> None: ...

    def add_login_attempt(self, key: str, ok: bool, now: float) -> None:
        """Record a login attempt for ``key`` (a user name or a client address)."""

    def login_failures(self, key: str, since: float) -> tuple[int, float]:
        """(failed attempts for ``key`` since ``since`` and after its last success, time of the last one)."""

    def purge_login_attempts(self, older_than: float) -> int: ...

    def session_generation(self, user_id: int) -> int:
        """The user's session generation (0 at first): a web session signed with an older one is over."""

    def bump_session_generation(self, user_id: int) -> int:
        """End every web session of the user (sign out, password change, removal); the new generation."""

    def end_web_session(self, sid: str, until: float, now: Optional[float] = None) -> None:
        """End one web session (its browser signed out): ``sid`` is refused until ``until``, when its cookie
        has expired anyway; sessions ended longer ago are forgotten."""

    def web_session_ended(self, sid: str) -> bool:
        """Whether the session ``sid`` was signed out."""

    # -- web UI: audit log -------------------------------------------------------------------------

    def add_audit(self, user: str, action: str, target: str, before: Any = None, after: Any = None,
                  now: Optional[float] = None) -> AuditEntry:
        """``before``/``after``: JSON-able values (dataclasses should be converted by the caller). The entry
        carries the store's node name."""

    def list_audit(self, limit: int = 100, *, before_id: Optional[int] = None) -> list[AuditEntry]:
        """Newest first."""

    # -- web UI: access requests and harmful-site reports ------------------------------------------

    def add_access_request(self, client: str, domain: str, message: str, *, device: str = "", profile: str = "",
                           reason: str = "", now: Optional[float] = None) -> AccessRequest:
        """A pending request; a second pending one for the same client and domain replaces its message."""

    def get_access_request(self, request_id: int) -> Optional[AccessRequest]: ...

    def list_access_requests(self, status: Optional[str] = None, limit: int = 200) -> list[AccessRequest]:
        """Pending first, then newest first."""

    def latest_access_request(self, client: str, domain: str) -> Optional[AccessRequest]: ...

    def decide_access_request(self, request_id: int, status: str, decision: str, by: str,
                              until: Optional[float] = None, now: Optional[float] = None) -> AccessRequest:
        """Record the parent's answer (status "approved" or "declined"). Does not itself allow anything:
        the caller adds the temporary allow or the allow-list entry."""

    def count_access_requests(self, client: str, since: float) -> int:
        """Requests a client made since ``since`` (for the public form's rate limit)."""

    def add_report(self, client: str, url: str, kind: str, contact: str = "", message: str = "",
                   now: Optional[float] = None, *, device: str = "", lang: str = "") -> HarmReport: ...

    def list_reports(self, limit: int = 1000, *, handled: Optional[bool] = None) -> list[HarmReport]:
        """Newest first; ``handled`` False: only new ones, True: only handled ones."""

    def get_report(self, report_id: int) -> Optional[HarmReport]: ...

    def reports_to_forward(self, limit: int = 50) -> list[HarmReport]:
        """The list provider's outbox: reports not forwarded yet, oldest first."""

    def mark_reports_forwarded(self, report_ids: list[int], now: Optional[float] = None, *, by: str = "") -> int:
        """Note that the provider acknowledged these reports (a report forwarded already keeps its time); ``by``:
        the appliance id that forwarded them (its decisions on them are the ones kept). Returns how many."""

    def count_new_reports(self) -> int:
        """Reports no parent has marked handled yet."""

    def mark_report_handled(self, report_id: int, by: str, now: Optional[float] = None) -> HarmReport:
        """Mark a report handled by ``by`` (a report handled already keeps its first answer)."""

    def count_reports(self, client: str, since: float) -> int: ...

    # -- the list provider's link (settings rows: shared by every node of a store) -------------------
    # Unblock requests are dicts {id, domain, note, lang, time, status, sent, by, remote, reason, decided_at}:
    # status queued (not sent), new, deferred, approved or rejected; ``by`` the appliance id (at the provider)
    # that sent it, ``remote`` the number it was sent under. ValueError as above.

    def add_provider_unblock(self, domain: str, note: str = "", lang: str = "",
                             now: Optional[float] = None) -> dict:
        """Queue a request to unblock ``domain`` (checked by the caller); refused while the same name waits
        for a decision (queued, new or deferred), or with a note over 500 characters."""

    def list_provider_unblocks(self) -> list[dict]:
        """The requests kept (the newest 200), oldest first."""

    def provider_unblocks_to_send(self, by: str, limit: int = 50) -> list[dict]:
        """The outbox, oldest first: requests not acknowledged yet. A request whose ``remote`` number the
        appliance ``by`` sent before gets a new one (the provider would take it for the same request)."""

    def mark_provider_unblocks_sent(self, ids: list[int], by: str, now: Optional[float] = None) -> int:
        """The provider acknowledged these requests (by ``id``) from the appliance ``by``: queued → new."""

    def apply_provider_unblock_decisions(self, by: str, decisions: Any) -> int:
        """The decisions of a check-in answer of the appliance ``by`` (``[{id: remote number, status, reason,
        decided_at}]``, unchecked) on the requests it sent; returns how many changed."""

    def import_provider_unblocks(self, items: list[dict], by: str) -> int:
        """Take the requests of an older appliance's outbox file (sent ones were sent by ``by`` and keep their
        number at the provider); a request imported already is skipped. Returns how many were added."""

    def provider_report_decisions(self) -> dict[int, dict]:
        """The provider's decisions on forwarded reports, by report id: {status, category, reason, decided_at,
        by}."""

    def save_provider_report_decisions(self, by: str, decisions: Any) -> int:
        """Merge the decisions of a check-in answer of the appliance ``by`` (``[{id, status, category, reason,
        decided_at}]``, unchecked) on reports it forwarded (or forwarded before forwarders were recorded);
        returns how many changed."""

    def reports_awaiting_decisions(self, by: str, since: float) -> int:
        """Reports forwarded since ``since`` by ``by`` (or by an unrecorded appliance), decided or not: while
        there are any, that appliance's check-ins ask for their decisions, so a reviewer's second decision on a
        report (approved by mistake, then rejected) reaches the appliance too."""

    def provider_lease(self, holder: str, ttl: float, node: str = "", now: Optional[float] = None) -> bool:
        """Take or renew the lease of the node that forwards reports and requests (``holder``: its appliance
        id) for ``ttl`` seconds; False while another holder's lease runs. Renewing a lease with more than half
        of ``ttl`` left writes nothing."""

    def release_provider_lease(self, holder: str) -> None:
        """Give the lease up (a node that stops), so another node takes over at once."""

    def provider_lease_holder(self, now: Optional[float] = None) -> Optional[dict]:
        """The running lease {holder, node, since, until}, or None."""

    def close(self) -> None: ...
