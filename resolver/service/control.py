"""The engine's local control socket: one command line in, one JSON line out.

Commands: ``stats``, ``reload`` (the config file), ``lists-reload``, ``lists-update`` (start a list update
in the background, from the config file as it is now: the web UI's "Update now"), ``policy-reload`` (profiles and
devices from the store, at once instead of within a second), ``explain CLIENT_IP NAME`` (what that
client gets for that name now, and why: the block page uses it), ``ping``.

A Unix socket in ``data_dir`` (mode 0660), so only the appliance's own user
and admins reach it; the CLI (`hearth stats`) and the web UI process use it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any, Optional

log = logging.getLogger("hearth.control")


class ControlServer:
    def __init__(self, engine: Any):
        self.engine = engine
        self.server: Optional[asyncio.AbstractServer] = None
        self.path = ""

    async def start(self, path: str) -> None:
        self.path = path
        if len(path.encode()) > 100:  # AF_UNIX path limit: run without the socket rather than fail
            log.warning("control socket path too long, `hearth stats` will not work: %s", path)
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.server = await asyncio.start_unix_server(self._serve, path=path)
        os.chmod(path, 0o660)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            command = line.decode("utf-8", "replace").strip()
            if command == "stats":
                reply: dict = {"ok": True, "stats": self.engine.snapshot()}
            elif command == "reload":
                ok, message = await self.engine.reload()
                reply = {"ok": ok, "message": message}
            elif command == "lists-reload":
                reply = {"ok": self.engine.load_lists(), "generation": self.engine.pipeline.generation}
            elif command in ("lists-update", "lists-update offline"):
                reply = {"ok": True, "started": self.engine.start_update("ui", offline=command.endswith("offline"))}
            elif command == "policy-reload":
                await self.engine.refresh_policies(force=True)
                reply = {"ok": True, "generation": self.engine.pipeline.generation}
            elif command.startswith("explain "):
                parts = command.split()
                reply = self.engine.explain(parts[1], parts[2]) if len(parts) == 3 else {
                    "ok": False, "message": "usage: explain CLIENT_IP NAME"}
            elif command == "ping":
                reply = {"ok": True, "pid": os.getpid(),
                         "dns": [_fmt(a) for a in self.engine.listeners.addresses]}
            else:
                reply = {"ok": False, "message": f"unknown command {command!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _fmt(addr: tuple) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def call(path: str, command: str, timeout: float = 5.0) -> dict:
    """Send one command to a running engine (blocking client for the CLI)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


async def acall(path: str, command: str, timeout: float = 5.0) -> dict:
    """Send one command to a running engine from an event loop (the ``dns.workers`` parent to a worker)."""
    async def ask() -> dict:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 22)
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        if not line:
            raise ConnectionError(f"no reply on {path}")
        return json.loads(line)

    return await asyncio.wait_for(ask(), timeout)
