"""`hearth run`: start the engine and the web UI as child processes and keep them up.

A child that exits unexpectedly is restarted with a growing delay (reset
once it has stayed up a minute). SIGTERM/SIGINT stop every child cleanly;
SIGHUP is passed on so each reloads its config.

`hearth run` checks the configuration, then replaces itself (same PID, so systemd's MAINPID stays
right) with ``python -m resolver.supervisor``: this module imports nothing of Hearth but itself,
so the long-lived supervisor costs a bare interpreter's memory (about 10 MB, not 27) on a router.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

log = logging.getLogger("hearth.supervisor")

STABLE_AFTER = 60.0
MAX_BACKOFF = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: Optional[subprocess.Popen] = None
    started: float = 0.0
    backoff: float = 1.0
    restart_at: float = 0.0
    restarts: int = field(default=0)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv)
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)


class Supervisor:
    def __init__(self, children: list[Child]):
        self.children = children
        self.stopping = False

    def _signal(self, signum, _frame) -> None:
        if signum == signal.SIGHUP:
            for c in self.children:
                if c.proc and c.proc.poll() is None:
                    c.proc.send_signal(signal.SIGHUP)
            return
        self.stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        for c in self.children:
            c.start()
        while not self.stopping:
            now = time.monotonic()
            for c in self.children:
                if c.proc is None:
                    if now >= c.restart_at:
                        c.restarts += 1
                        c.start()
                    continue
                code = c.proc.poll()
                if code is None:
                    if now - c.started > STABLE_AFTER:
                        c.backoff = 1.0
                    continue
                log.error("%s exited with code %s; restarting in %.0fs", c.name, code, c.backoff)
                c.proc = None
                c.restart_at = now + c.backoff
                c.backoff = min(c.backoff * 2, MAX_BACKOFF)
            time.sleep(0.2)
        return self.shutdown()

    def shutdown(self, grace: float = 10.0) -> int:
        for c in self.children:
            if c.proc and c.proc.poll() is None:
                c.proc.terminate()
        deadline = time.monotonic() + grace
        for c in self.children:
            if c.proc is None:
                continue
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", c.name, grace)
                c.proc.kill()
                c.proc.wait()
        log.info("stopped")
        return 0


def child_argv(command: str, config_file: Optional[str]) -> list[str]:
    argv = [sys.executable, "-m", "resolver.cli", command]
    if config_file:
        argv += ["--config", os.path.abspath(config_file)]
    return argv


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m resolver.supervisor [--config FILE] [--no-web] [--log-level LEVEL]`` (run by `hearth run`)."""
    import argparse

    ap = argparse.ArgumentParser(prog="hearth run")
    ap.add_argument("--config", metavar="FILE")
    ap.add_argument("--no-web", action="store_true")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    children = [Child("dns engine", child_argv("dns", args.config))]
    if not args.no_web:
        children.append(Child("web ui", child_argv("web", args.config)))
    return Supervisor(children).run()


if __name__ == "__main__":
    raise SystemExit(main())
