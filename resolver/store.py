"""The narrow interface every part of Hearth uses to reach its store.

The engine, the CLI and the web UI call these methods and never write SQL.
SQLite (``store_sqlite.py``) is the embedded default; a PostgreSQL backend
implements the same protocol and passes the same contract tests.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Protocol, Sequence

from .profiles import Device, Profile, Schedule, SeenClient, TempAllow


class SchemaTooNewError(RuntimeError):
    """The store was written by a newer Hearth (its schema version is past this code's migrations)."""


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


class Store(Protocol):
    def migrate(self) -> int:
        """Bring the schema to the current version; returns it. Raises SchemaTooNewError for a store
        written by a newer Hearth."""

    def schema_version(self) -> int: ...

    def add_queries(self, rows: Sequence[QueryRow]) -> None: ...

    def recent_queries(self, limit: int = 100, *, client: Optional[str] = None,
                       qname_contains: Optional[str] = None) -> list[QueryRow]: ...

    def purge_queries(self, older_than: float) -> int:
        """Delete query-log rows older than ``older_than`` (UNIX time); returns how many."""

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

    # -- change detection ----------------------------------------------------------------------

    def policy_version(self) -> int:
        """A number that changes with every change to profiles, devices, schedules, pauses and temporary
        allows, whichever process makes it. The engine polls it to reload its policy."""

    def close(self) -> None: ...
