"""A real PostgreSQL server for tests, started and stopped by the test run itself.

``initdb`` in a temporary folder, ``pg_ctl`` on a free loopback port (as user ``postgres`` through
``runuser`` when the tests run as root, since PostgreSQL refuses to run as root), trust authentication on
127.0.0.1 only, no Unix socket outside the temporary folder. ``tests/run.sh`` installs Debian's
``postgresql`` package; the binaries are found under ``/usr/lib/postgresql/*/bin`` (Debian keeps them off
PATH) or on PATH.

Use the ``postgres`` fixture (tests/conftest.py): one server per test session, a fresh database per test
through :meth:`PostgresServer.new_database`.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional


def find_bin(name: str) -> Optional[str]:
    """``initdb``/``pg_ctl``/``psql``: Debian's versioned folder first (newest), then PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One throw-away cluster on 127.0.0.1:port; ``url(db)`` gives a libpq URL for a database on it."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise RuntimeError("PostgreSQL is not installed: tests/run.sh installs Debian's postgresql package "
                               "(apt-get install postgresql)")
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER") or "hearth"
        self.tmp = Path(tempfile.mkdtemp(prefix="hearth-pg-"))
        self.data = self.tmp / "data"
        self.port = 0
        if self.as_root:
            shutil.chown(self.tmp, "postgres", "postgres")

    def _run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, **kw)

    def start(self) -> PostgresServer:
        res = self._run([self.initdb, "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                         "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C"], timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed: {res.stderr or res.stdout}")
        for attempt in range(5):
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.tmp} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            res = self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.tmp / "server.log"), "-o", opts,
                             "-w", "-t", "60", "start"], timeout=90)
            if res.returncode == 0:
                return self
            time.sleep(0.2 * (attempt + 1))   # the port may have been taken between the probe and the bind
        raise RuntimeError(f"pg_ctl start failed: {res.stderr or res.stdout}\n{self.log()}")

    def log(self) -> str:
        try:
            return (self.tmp / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (the data folder stays, so :meth:`restart` brings the same cluster back)."""
        if self.port:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], timeout=90)

    def restart(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.tmp} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        res = self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.tmp / "server.log"), "-o", opts,
                         "-w", "-t", "60", "start"], timeout=90)
        if res.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {res.stderr or res.stdout}")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)


def _has_c_utf8() -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.lower() in ("c.utf8", "c.utf-8") for line in out.splitlines())
