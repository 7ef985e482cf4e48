"""What must hold for Hearth to start, checked in advance, and one-line errors when it does not.

`hearth dns`, `hearth web` and `hearth run` call :func:`preflight` before they start (a port in use or
an unwritable data directory then ends them at once with one line naming the address or path and what
to do); `hearth check-config` and `hearth doctor` report the same problems without starting anything.
"""
from __future__ import annotations

import errno
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

EXIT_STARTUP = 1   # exit status of a process that could not start (systemd, procd and `hearth run` see it)


class StartupError(Exception):
    """Hearth cannot start; the message is one line naming what and what to do."""


@dataclass(frozen=True)
class Finding:
    key: str        # the config key concerned, e.g. dns.listen
    message: str
    fatal: bool = True   # False: worth a word (e.g. needs privileges this user lacks) but may work as a service


def fmt_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_error(host: str, port: int, proto: str, exc: OSError, service: str = "dns") -> str:
    """'cannot listen on 127.0.0.1:5300/udp: address already in use (…?)' for a failed bind."""
    where = f"cannot listen on {fmt_addr(host, port)}/{proto}"
    if exc.errno == errno.EADDRINUSE:
        who = ("another DNS server such as dnsmasq or systemd-resolved, or another Hearth?" if service == "dns"
               else "another web server, or another Hearth?")
        return f"{where}: address already in use ({who} `sudo ss -lntup 'sport = :{port}'` shows it)"
    if exc.errno == errno.EACCES:
        return (f"{where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE: start Hearth "
                "from its systemd unit or init script, or pick a port above 1023)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host} is not an address of this machine (use one `ip addr` shows, or 0.0.0.0 / ::)"
    return f"{where}: {exc.strerror or exc}"


def try_bind(host: str, port: int, protos: tuple[str, ...] = ("udp", "tcp")) -> Optional[tuple[str, OSError]]:
    """Bind (and let go) ``host:port`` for each protocol; the first (proto, error) that fails, else None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for proto in protos:
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        try:
            with socket.socket(family, kind) as s:
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
                if kind == socket.SOCK_STREAM:
                    s.listen(1)
        except OSError as exc:
            return proto, exc
    return None


def data_dir_problem(path: str) -> Optional[str]:
    """Why Hearth could not keep its state in ``path`` (creating it if missing), or None. Creates nothing."""
    p = Path(path).absolute()
    user = _user()
    if p.exists():
        if not p.is_dir():
            return f"data directory {p} is a file, not a directory (set data_dir to a directory)"
        if not os.access(p, os.R_OK | os.W_OK | os.X_OK):
            return (f"cannot write to the data directory {p} (owner uid {p.stat().st_uid}, Hearth runs as "
                    f"{user}): give it to that user, e.g. `sudo chown -R {user}: {p}`")
        for name in ("hearth.db", "hearth.db-wal", "hearth.db-shm"):
            f = p / name
            if f.exists() and not os.access(f, os.R_OK | os.W_OK):
                return (f"cannot read and write the store {f} (owner uid {f.stat().st_uid}, Hearth runs as "
                        f"{user}): `sudo chown -R {user}: {p}`")
        return None
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return (f"data directory {p} does not exist and cannot be created in {parent} (as {user}): create it "
                f"for that user, e.g. `sudo install -d -o {user} {p}`")
    return None


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


def running_engine(config: Any) -> Optional[dict]:
    """The state file of a Hearth engine that runs with this data_dir (its pid is alive), else None.
    Readable without access to the control socket."""
    try:
        state = json.loads((Path(config.data_dir) / "engine.json").read_text())
        os.kill(int(state["pid"]), 0)
    except PermissionError:
        return state   # alive, another user's
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def preflight(config: Any, *, dns: bool = True, web: bool = False, running_ok: bool = False) -> list[Finding]:
    """Problems that would stop the engine (``dns``) or the web UI (``web``) from starting: listen addresses
    that cannot be bound, a data directory that cannot be used. With ``running_ok`` addresses held by a Hearth
    engine running on this data_dir count as fine (`check-config` while Hearth runs)."""
    from resolver.engine.dnsconfig import parse_listen

    out: list[Finding] = []
    problem = data_dir_problem(config.data_dir)
    if problem:
        out.append(Finding("data_dir", problem))
    engine = running_engine(config)
    held = set()
    if engine is not None:
        for text in engine.get("dns", []):
            host, _, port = text.rpartition(":")
            held.add((host.strip("[]"), int(port)))
    if dns:
        for text in config.dns.listen:
            host, port = parse_listen(text)
            if port == 0:
                continue
            if (host, port) in held:
                if not running_ok:
                    out.append(Finding("dns.listen", f"{fmt_addr(host, port)}: Hearth is already running here "
                                       f"(pid {engine.get('pid')}); stop it first"))
                continue
            failed = try_bind(host, port)
            if failed is not None:
                proto, exc = failed
                out.append(Finding("dns.listen", bind_error(host, port, proto, exc),
                                   fatal=exc.errno != errno.EACCES or not running_ok))
    if web and config.web.enabled:
        for key in ("web.listen", "web.block_page_listen"):
            text = config.web.listen if key == "web.listen" else config.web.block_page_listen
            if not text:
                continue
            host, port = parse_listen(text)
            if port == 0 or (engine is not None and running_ok):
                continue   # while Hearth runs its web UI holds these: nothing to learn by binding
            failed = try_bind(host, port, ("tcp",))
            if failed is not None:
                _proto, exc = failed
                # the block page falls back to /blocked on web.listen: not a reason to stop
                out.append(Finding(key, bind_error(host, port, "tcp", exc, service="web"),
                                   fatal=key == "web.listen" and (exc.errno != errno.EACCES or not running_ok)))
    return out


def require(findings: list[Finding]) -> None:
    """Raise StartupError with the first fatal finding."""
    for f in findings:
        if f.fatal:
            raise StartupError(f.message)
