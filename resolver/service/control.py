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
from typing import Any, Awaitable, Callable, Optional

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
        self.server = await serve_lines(path, self.command)

    async def command(self, command: str) -> dict:
        """The reply to one command line."""
        if command == "stats":
            return {"ok": True, "stats": self.engine.snapshot()}
        if command == "reload":
            ok, message = await self.engine.reload()
            return {"ok": ok, "message": message}
        if command == "lists-reload":
            return {"ok": self.engine.load_lists(), "generation": self.engine.pipeline.generation}
        if command in ("lists-update", "lists-update offline"):
            return {"ok": True, "started": self.engine.start_update("ui", offline=command.endswith("offline"))}
        if command == "policy-reload":
            await self.engine.refresh_policies(force=True)
            return {"ok": True, "generation": self.engine.pipeline.generation}
        if command.startswith("explain "):
            parts = command.split()
            return self.engine.explain(parts[1], parts[2]) if len(parts) == 3 else {
                "ok": False, "message": "usage: explain CLIENT_IP NAME"}
        if command == "ping":
            return {"ok": True, "pid": os.getpid(), "dns": [_fmt(a) for a in self.engine.listeners.addresses]}
        return {"ok": False, "message": f"unknown command {command!r}"}

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
            try:
                os.unlink(self.path)
            except OSError:
                pass


async def serve_lines(path: str, command: Callable[[str], Awaitable[dict]]) -> asyncio.AbstractServer:
    """A Unix socket at ``path`` (mode 0660, a stale one replaced) that answers each connection's one command
    line with ``command``'s reply as one JSON line: the engine's control socket and the ``dns.workers``
    parent's."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            reply = await command(line.decode("utf-8", "replace").strip())
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(serve, path=path)
    os.chmod(path, 0o660)
    return server


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
