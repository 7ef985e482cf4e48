"""Throw-away network namespaces for topology tests: veth pairs with private addresses, processes
started inside them, and a clean-up that removes everything (deleting a namespace removes its veths).

Only addresses inside namespaces this module creates are ever used: nothing reaches the host's
networks or the internet.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from typing import Optional

import pytest


def require_netns() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not shutil.which("ip"):
        pytest.skip("`ip` is not installed (Debian package iproute2)")
    probe = f"hprobe{uuid.uuid4().hex[:6]}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"`ip netns add` is not available here: {res.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


class Lab:
    """Namespaces named <prefix>-<role>; call close() (the fixture does) to remove them."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._veths = 0

    def ns(self, role: str) -> str:
        name = f"hearth-{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, a: str, a_addr: str, b: str, b_addr: str, *, b_mac: Optional[str] = None) -> tuple[str, str]:
        """A veth pair between namespaces a and b, with addresses in CIDR form; returns the interface names."""
        self._veths += 1
        ia, ib = f"v{self.tag}a{self._veths}", f"v{self.tag}b{self._veths}"
        sh("ip", "link", "add", ia, "netns", a, "type", "veth", "peer", "name", ib, "netns", b)
        if b_mac:
            sh("ip", "-n", b, "link", "set", ib, "address", b_mac)
        sh("ip", "-n", a, "addr", "add", a_addr, "dev", ia)
        sh("ip", "-n", b, "addr", "add", b_addr, "dev", ib)
        sh("ip", "-n", a, "link", "set", ia, "up")
        sh("ip", "-n", b, "link", "set", ib, "up")
        return ia, ib

    def run(self, ns: str, *argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *argv, check=check, timeout=timeout)

    def start(self, ns: str, *argv: str, log: Optional[str] = None, env: Optional[dict] = None) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.namespaces.clear()
