"""`hearth doctor`: check an installation and say what to fix.

Each check returns :class:`Check` results (ok, warn, fail or skip) with a message and, for
problems, the fix in one or two sentences. The checks:

* ``ports``     every ``dns.listen`` address is Hearth's (engine running) or free; when it is taken
                the holder is named (systemd-resolved's stub listener, dnsmasq, …) with the way out
* ``upstreams`` one real query (``. NS``) to each configured upstream, over its own transport
* ``lists``     list freshness: ``lists/status.json`` ages against the update intervals
* ``categories`` each profile's ticked categories that no list gives a name (they block nothing)
* ``time``      the clock is plausible and synchronised (schedules depend on it)
* ``engine``    the engine answers on its control socket and a DNS query on its socket
* ``web``       the web UI answers ``/healthz``
* ``store``     data_dir can be created and written by this user; the SQLite store opens (read only),
                passes ``quick_check``, is not from a newer Hearth; free disk space in data_dir

Nothing here changes the installation. Exit status (cli_ops): 1 when a check fails.

One module over 500 lines on purpose: it is a catalogue of independent checks, each a short function
with its fix text, read top to bottom like the list above; splitting it would scatter that list.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

CHECKS = ("ports", "upstreams", "lists", "categories", "time", "engine", "web", "store")
EARLIEST_SANE_TIME = 1735689600   # 2025-01-01: a clock before this has not been set
MIN_FREE_BYTES = 64 * 1024 * 1024
TIME_ERROR = 5                    # adjtimex(): clock not synchronised


@dataclass
class Check:
    name: str
    status: str        # ok | warn | fail | skip
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def run_checks(config: Any, config_file: Optional[str], *, skip: frozenset = frozenset(),
               timeout: float = 2.0) -> list[Check]:
    results = [Check("config", "ok", f"{config_file or 'embedded defaults'} loads without errors")]
    engine = engine_state(config)
    table: dict[str, Callable[[], list[Check]]] = {
        "ports": lambda: check_ports(config, engine),
        "upstreams": lambda: check_upstreams(config, timeout),
        "lists": lambda: check_lists(config),
        "categories": lambda: check_categories(config),
        "time": lambda: check_time(config),
        "engine": lambda: check_engine(config, engine, timeout),
        "web": lambda: check_web(config),
        "store": lambda: check_store(config),
    }
    for name in CHECKS:
        if name in skip:
            results.append(Check(name, "skip", "skipped (--skip)"))
            continue
        try:
            results.extend(table[name]())
        except Exception as exc:  # noqa: BLE001 - a bug in one check must not hide the others
            results.append(Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}"))
    return results


# ---------------------------------------------------------------------------------------------
# engine state, shared by several checks

def engine_state(config: Any) -> Optional[dict]:
    """The running engine's engine.json (pid, bound dns addresses) if it answers a ping, else None."""
    from resolver.service.control import call

    try:
        reply = call(config.control_socket, "ping", timeout=1.0)
    except (OSError, ValueError):
        return None
    if not reply.get("ok"):
        return None
    try:
        state = json.loads((Path(config.data_dir) / "engine.json").read_text())
    except (OSError, ValueError):
        state = {"pid": reply.get("pid"), "dns": []}
    return state


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _connectable(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


# ---------------------------------------------------------------------------------------------
# ports

HOLDER_FIXES = {
    "systemd-resolve": "systemd-resolved's stub listener holds 127.0.0.53:53. Turn it off and keep "
                       "systemd-resolved for the host: `printf '[Resolve]\\nDNSStubListener=no\\n' | sudo tee "
                       "/etc/systemd/resolved.conf.d/hearth.conf && sudo systemctl restart systemd-resolved` "
                       "(deploy/install.sh --disable-resolved-stub does this)",
    "dnsmasq": "dnsmasq answers DNS on this port. Either make it DHCP-only (`port=0` in /etc/dnsmasq.conf) or "
               "keep it in front and forward to Hearth on 127.0.0.1:5353 with add-mac (docs/openwrt.md)",
    "named": "BIND (named) serves DNS here: stop it (`sudo systemctl disable --now named`) or move Hearth",
    "unbound": "unbound serves DNS here: stop it, or move it to another port and make it Hearth's upstream",
    "pihole-FTL": "Pi-hole serves DNS here: stop it (`sudo systemctl disable --now pihole-FTL`)",
    "AdGuardHome": "AdGuard Home serves DNS here: stop it or move Hearth",
    "hearth": "another Hearth is already running with another data_dir or config",
    "python": "another Hearth (or Python program) holds the port",
}


def port_holders(port: int, udp: bool = True) -> list[tuple[str, int, str]]:
    """(process name, pid, local address) of sockets listening on ``port``, from `ss` (root sees all)."""
    ss = shutil.which("ss")
    if not ss:
        return []
    try:
        out = subprocess.run([ss, "-Hlnp" + ("u" if udp else "t"), f"sport = :{port}"], capture_output=True,
                             text=True, timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3] if len(fields) > 4 else ""
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
            found.append((name, int(pid), local))
        if not re.search(r"pid=", line) and local:
            found.append(("?", 0, local))
    return found


def _fix_for(holders: list[tuple[str, int, str]], port: int) -> str:
    for name, _pid, _local in holders:
        for key, fix in HOLDER_FIXES.items():
            if name.startswith(key):
                return fix
    return (f"find it with `sudo ss -lntup 'sport = :{port}'` and stop it, or give Hearth another "
            "dns.listen address")


def _try_bind(host: str, port: int) -> Optional[OSError]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT, not listeners
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind((host, port))
                if kind == socket.SOCK_STREAM:
                    s.listen(1)
            except OSError as exc:
                return exc
    return None


def check_ports(config: Any, engine: Optional[dict]) -> list[Check]:
    from resolver.engine.dnsconfig import parse_listen

    out = []
    bound = {_split(a) for a in (engine or {}).get("dns", [])}
    for text in config.dns.listen:
        host, port = parse_listen(text)
        if engine is not None:
            if (host, port) in bound or (port == 0 and any(b[0] == host for b in bound)):
                out.append(Check("ports", "ok", f"{text}: Hearth's engine listens here"))
                continue
            holders = port_holders(port) + port_holders(port, udp=False) if port else []
            who = ", ".join(sorted({f"{n} (pid {p}) on {a}" for n, p, a in holders})) or "unknown"
            out.append(Check("ports", "fail", f"{text}: the engine runs but does not listen here "
                             f"(holders: {who})", _fix_for(holders, port) + "; then restart Hearth"))
            continue
        if port == 0:
            out.append(Check("ports", "ok", f"{text}: a free port is chosen at start"))
            continue
        err = _try_bind(host, port)
        if err is None:
            out.append(Check("ports", "ok", f"{text}: free (Hearth is not running)"))
        elif err.errno == errno.EADDRINUSE:
            holders = port_holders(port) + port_holders(port, udp=False)
            who = ", ".join(sorted({f"{n} (pid {p}) on {a}" for n, p, a in holders})) or "another program"
            out.append(Check("ports", "fail", f"{text}: in use by {who}", _fix_for(holders, port)))
        elif err.errno == errno.EACCES:
            out.append(Check("ports", "fail", f"{text}: ports below 1024 need root or CAP_NET_BIND_SERVICE",
                             "run Hearth from its systemd unit (it grants CAP_NET_BIND_SERVICE), or "
                             "`sudo setcap cap_net_bind_service=+ep` on the venv's python"))
        elif err.errno == errno.EADDRNOTAVAIL:
            out.append(Check("ports", "fail", f"{text}: {host} is not an address of this machine",
                             "use 0.0.0.0:53 / [::]:53, or an address `ip addr` shows"))
        else:
            out.append(Check("ports", "fail", f"{text}: cannot bind: {err}"))
    return out


# ---------------------------------------------------------------------------------------------
# upstreams

async def _probe_upstreams(config: Any, timeout: float) -> list[Check]:
    from resolver.engine.upstream import UpstreamError, UpstreamPool

    async def one(url: str) -> Check:
        try:
            pool = UpstreamPool([url], attempts=1, timeout=timeout, ca_file=config.dns.upstream_ca_file or None)
        except ValueError as exc:
            return Check("upstreams", "fail", f"{url}: {exc}")
        packet = struct.pack("!6H", int.from_bytes(os.urandom(2), "big"), 0x0100, 1, 0, 0, 0) + b"\0\0\x02\0\x01"
        t0 = time.monotonic()
        try:
            reply, _ = await asyncio.wait_for(pool.query(packet), timeout + 1)
        except (UpstreamError, asyncio.TimeoutError, OSError) as exc:
            return Check("upstreams", "fail", f"{url}: no answer ({exc or 'timed out'})",
                         "check the address and port, that the resolver runs, and the firewall; while every "
                         "upstream is down Hearth answers only cached and local names")
        finally:
            await pool.close()
        ms = (time.monotonic() - t0) * 1000
        rcode = reply[3] & 0x0F
        if rcode == 2:
            return Check("upstreams", "fail", f"{url}: answers SERVFAIL ({ms:.0f} ms): it cannot resolve",
                         "the resolver is up but cannot reach the internet or DNSSEC fails; check it")
        if rcode == 5:
            return Check("upstreams", "warn", f"{url}: answers but REFUSES a query for the root ({ms:.0f} ms)",
                         "make sure it allows recursion for this machine")
        return Check("upstreams", "ok", f"{url}: answers in {ms:.0f} ms")

    return list(await asyncio.gather(*(one(u) for u in config.dns.upstreams)))


def check_upstreams(config: Any, timeout: float) -> list[Check]:
    import logging

    quiet = logging.getLogger("resolver.engine.upstream")
    level = quiet.level
    quiet.setLevel(logging.ERROR)   # the pool logs "marked unhealthy": the check reports it instead
    try:
        checks = asyncio.run(_probe_upstreams(config, timeout))
    finally:
        quiet.setLevel(level)
    if checks and all(c.status == "fail" for c in checks):
        checks.append(Check("upstreams", "fail", "no upstream answers: names not cached fail with SERVFAIL",
                            "fix one of the upstreams above"))
    return checks


# ---------------------------------------------------------------------------------------------
# lists

def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def list_intervals(config: Any) -> dict[str, float]:
    return {"config": config.blocking.list_update_interval, "feed": config.feed.update_interval}


def stale_after(interval: float) -> float:
    """A list is stale when it missed two updates in a row (plus an hour for jitter and slow downloads)."""
    return 2 * interval + 3600


def check_lists(config: Any, now: Optional[float] = None) -> list[Check]:
    from blocklists.manager import ListManager

    now = time.time() if now is None else now
    wanted = config.blocking.starter_lists or any(c.enabled for c in config.lists) or bool(config.feed.url)
    if not wanted:
        return [Check("lists", "skip", "no lists configured (blocking.starter_lists off, no lists, no feed)")]
    manager = ListManager(config)
    rows = manager.status()
    out = []
    if not manager.index_path.exists():
        out.append(Check("lists", "fail", "no compiled blocklist index: nothing is blocked",
                         "run `hearth lists update` (the engine also compiles at its first start)"))
    intervals = list_intervals(config)
    known = {r.id for r in rows}
    for c in config.lists:
        if c.enabled and c.id not in known:
            out.append(Check("lists", "warn", f"list {c.id}: configured but never compiled",
                             "run `hearth lists update`"))
    out += _feed_and_run_checks(manager, now)
    fresh = 0
    for r in rows:
        if r.origin not in intervals:
            continue   # bundled starter lists have nothing to download
        interval = intervals[r.origin]
        error = f" (last error: {r.error})" if r.error else ""
        if r.last_success is None:
            out.append(Check("lists", "fail", f"list {r.id}: never downloaded successfully{error}",
                             "check its URL and the network, then `hearth lists update --list " + r.id + "`"))
        elif now - r.last_success > stale_after(interval):
            out.append(Check("lists", "fail", f"list {r.id}: stale, last success {_ago(now - r.last_success)} ago "
                             f"(updated every {_ago(interval)}){error}",
                             "run `hearth lists update` and read its errors; check the URL, the network and the "
                             "clock; `journalctl -u hearth` shows the scheduled updates"))
        elif r.error:
            out.append(Check("lists", "warn", f"list {r.id}: the last update failed, the copy from "
                             f"{_ago(now - r.last_success)} ago is in use{error}", "check the list's URL"))
        else:
            fresh += 1
    if not out:
        starter = sum(1 for r in rows if r.origin == "starter")
        out.append(Check("lists", "ok", f"{len(rows)} lists compiled ({starter} bundled, {fresh} downloaded "
                         "and fresh)"))
    return out


def _feed_and_run_checks(manager: Any, now: float) -> list[Check]:
    """A failing feed and a failed update run are problems of their own (the lists' copies may look fine)."""
    state = manager.update_state()
    out = []
    feed = state.feed
    if feed is not None and feed.error:
        kept = (f"version {feed.version} ({feed.lists} lists) accepted {_ago(now - feed.last_success)} ago stays in "
                "force" if feed.version and feed.last_success else "no feed version accepted yet: its lists block "
                "nothing")
        out.append(Check("lists", "fail", f"feed {feed.url}: {feed.error}; {kept}",
                         "check feed.url and feed.public_key in the configuration, the network and the feed server, "
                         "then run `hearth lists update`"))
    run = state.run
    if run.error and not run.running:
        when = f"{run.trigger or 'cli'}, {_ago(now - (run.started or now))} ago"
        out.append(Check("lists", "fail", f"the last list update ({when}) failed: {run.error}",
                         "run `hearth lists update` and read its output; raise feed.update_time_limit if a big "
                         "update is simply slow"))
    return out


def check_categories(config: Any) -> list[Check]:
    """A line per profile and ticked category with 0 names in the compiled lists."""
    from resolver.policy.coverage import NO_NAMES, category_names, empty_categories

    from resolver.ops.backup import fix_sidecar_owner
    from resolver.store.open import is_postgres
    from resolver.store.sqlite import MIGRATIONS, SQLiteStore

    if is_postgres(getattr(config, "store", "")):
        return [Check("categories", "skip", "a shared store: `hearth doctor` on one node checks the lists only")]
    db = Path(config.data_dir) / "hearth.db"
    if not db.exists():
        return [Check("categories", "skip", "no store yet: no profiles to check")]
    store = SQLiteStore(str(db))    # read only: no migration (check_store reports a pending one)
    try:
        if store.schema_version() != len(MIGRATIONS):
            return [Check("categories", "skip", "the store's schema is not this Hearth's: profiles not checked")]
        profiles = store.list_profiles()
    finally:
        store.close()
        fix_sidecar_owner(str(db))
    names = category_names(config)
    out = [Check("categories", "warn", f"profile {p.name}: {category} is ticked but has {NO_NAMES}",
                 f"subscribe a list with `category: {category}` under `lists:` (or a feed that has one), "
                 "then `hearth lists update`; or untick it")
           for p in profiles for category in empty_categories(p.categories, names)]
    return out or [Check("categories", "ok", f"every category ticked in {len(profiles)} profile(s) has names "
                         f"in the compiled lists ({len(names)} categories have some)")]


# ---------------------------------------------------------------------------------------------
# time

def kernel_clock_synchronised() -> Optional[bool]:
    """The kernel's NTP state via adjtimex(2) (what timedatectl reports); None when unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        buf = ctypes.create_string_buffer(512)   # struct timex, zeroed: modes = 0 reads only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


def check_time(config: Any, now: Optional[float] = None) -> list[Check]:
    from zoneinfo import ZoneInfo

    now = time.time() if now is None else now
    local = time.strftime("%Y-%m-%d %H:%M", time.gmtime(now))
    try:
        import datetime

        local = datetime.datetime.fromtimestamp(now, ZoneInfo(config.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    except Exception:  # noqa: BLE001
        pass
    if now < EARLIEST_SANE_TIME:
        return [Check("time", "fail", f"the clock says {local}: it has not been set, schedules and list ages are "
                      "wrong", "enable NTP: `sudo timedatectl set-ntp true` (OpenWrt: `uci set "
                      "system.ntp.enabled=1; uci commit system; /etc/init.d/sysntpd restart`)")]
    synced = None
    source = "kernel"
    tdc = shutil.which("timedatectl")
    if tdc:
        try:
            res = subprocess.run([tdc, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True,
                                 timeout=3)
            if res.returncode == 0 and res.stdout.strip() in ("yes", "no"):
                synced, source = res.stdout.strip() == "yes", "timedatectl"
        except (OSError, subprocess.SubprocessError):
            pass
    if synced is None:
        synced = kernel_clock_synchronised()
    if synced is None:
        return [Check("time", "warn", f"local time {local} ({config.timezone}); cannot tell whether the clock "
                      "is synchronised", "make sure an NTP client runs (systemd-timesyncd, chrony, sysntpd)")]
    if not synced:
        return [Check("time", "warn", f"local time {local} ({config.timezone}); the clock is not synchronised "
                      f"({source})", "enable NTP: `sudo timedatectl set-ntp true` and allow UDP 123 out "
                      "(OpenWrt: `uci set system.ntp.enabled=1; uci commit system`); a Raspberry Pi has no "
                      "battery clock, so schedules are wrong until NTP syncs")]
    return [Check("time", "ok", f"local time {local} ({config.timezone}), synchronised ({source})")]


# ---------------------------------------------------------------------------------------------
# processes

def _dns_probe(host: str, port: int, timeout: float) -> Optional[bytes]:
    """A CHAOS version.bind query (answered REFUSED by Hearth at once, without the upstreams)."""
    qid = int.from_bytes(os.urandom(2), "big")
    packet = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + b"\x07version\x04bind\x00" + struct.pack("!HH", 16, 3)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (host, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = s.recv(4096)
                if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                    return data
        except OSError:
            return None
    return None


def check_engine(config: Any, engine: Optional[dict], timeout: float) -> list[Check]:
    if engine is None:
        return [Check("engine", "fail", f"the DNS engine is not running (no answer on {config.control_socket})",
                      "start it: `sudo systemctl start hearth` (OpenWrt: `/etc/init.d/hearth start`); see why it "
                      "stopped: `journalctl -u hearth -n 50` (OpenWrt: `logread -e hearth`)")]
    addrs = [_split(a) for a in engine.get("dns", [])]
    if not addrs:
        return [Check("engine", "warn", f"the engine (pid {engine.get('pid')}) runs but listens nowhere",
                      "check dns.listen and the log")]
    host, port = addrs[0]
    reply = _dns_probe(_connectable(host), port, timeout)
    if reply is None:
        return [Check("engine", "fail", f"the engine (pid {engine.get('pid')}) runs but does not answer DNS on "
                      f"{host}:{port}", "restart it (`sudo systemctl restart hearth`) and read its log")]
    return [Check("engine", "ok", f"the engine (pid {engine.get('pid')}) answers DNS on "
                  + ", ".join(engine.get("dns", [])))]


def check_web(config: Any) -> list[Check]:
    from resolver.ops.backup import web_answers

    if not config.web.enabled:
        return [Check("web", "skip", "the web UI is off (web.enabled: false)")]
    health = web_answers(config.web.listen)
    if health is None:
        return [Check("web", "fail", f"the web UI does not answer on http://{config.web.listen}/healthz",
                      "`hearth run` starts it with the engine (`sudo systemctl restart hearth`); check web.listen "
                      "and the log")]
    engine = "" if health.get("engine") else " (it cannot reach the engine)"
    return [Check("web", "ok" if not engine else "warn", f"the web UI answers on http://{config.web.listen}/"
                  + engine)]


def _check_shared_store(config: Any) -> list[Check]:
    """A PostgreSQL store: reachable, and at this Hearth's schema."""
    from resolver.store.open import STORE_ERRORS, describe_store, open_store
    from resolver.store.schema_postgres import MIGRATIONS

    where = describe_store(config)
    try:
        store = open_store(config, migrate=False, connections=1)
        try:
            version = store.schema_version()
        finally:
            store.close()
    except STORE_ERRORS as exc:
        return [Check("store", "fail", f"{where}: {exc}", "check that PostgreSQL runs and the `store:` URL")]
    if version > len(MIGRATIONS):
        return [Check("store", "fail", f"{where}: schema {version} is from a newer Hearth (this one knows "
                      f"{len(MIGRATIONS)})", "upgrade Hearth on this node")]
    if version < len(MIGRATIONS):
        return [Check("store", "warn", f"{where}: schema {version}, this Hearth migrates it to {len(MIGRATIONS)} "
                      "when it starts")]
    return [Check("store", "ok", f"{where}: shared store reachable, schema {version}")]


def check_store(config: Any) -> list[Check]:
    from resolver.ops.backup import fix_sidecar_owner
    from resolver.store.open import is_postgres
    from resolver.store.sqlite import MIGRATIONS

    if is_postgres(getattr(config, "store", "")):
        return _check_shared_store(config)

    from resolver.engine.startup import data_dir_problem

    out = []
    db = Path(config.data_dir) / "hearth.db"
    problem = data_dir_problem(config.data_dir)
    if problem:
        out.append(Check("store", "fail", problem, "Hearth cannot start until it can keep its state there"))
    if not db.exists():
        out.append(Check("store", "warn", f"no store at {db} yet", "it is created when Hearth first starts"))
    else:
        try:
            con = sqlite3.connect(str(db), timeout=5)   # only reads; see backup.copy_store for why not mode=ro
            try:
                version = con.execute("PRAGMA user_version").fetchone()[0]
                check = con.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                con.close()
                fix_sidecar_owner(str(db))
        except sqlite3.Error as exc:
            out.append(Check("store", "fail", f"{db}: cannot read it: {exc}",
                             "check the file's owner (the hearth user) and permissions; `hearth restore` a backup"))
        else:
            if check != "ok":
                out.append(Check("store", "fail", f"{db}: damaged ({check})",
                                 "restore a backup: `hearth restore FILE`"))
            elif version > len(MIGRATIONS):
                out.append(Check("store", "fail", f"{db}: schema {version} is from a newer Hearth "
                                 f"(this one knows {len(MIGRATIONS)})", "upgrade Hearth, or restore a backup"))
            else:
                pending = len(MIGRATIONS) - version
                out.append(Check("store", "ok", f"{db}: schema {version}"
                                 + (f" ({pending} migration(s) run at next start)" if pending else "")))
    try:
        free = shutil.disk_usage(config.data_dir).free
    except OSError:
        free = None
    if free is not None and free < MIN_FREE_BYTES:
        out.append(Check("store", "warn", f"only {free // (1024 * 1024)} MB free in {config.data_dir}",
                         "free some space or shorten querylog.retention"))
    return out
