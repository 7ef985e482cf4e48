"""`hearth run`: start the engine and the web UI as child processes and keep them up.

A child that exits unexpectedly is restarted with a growing delay (reset
once it has stayed up a minute). A child that keeps failing within a minute of
its start (a port in use, an unusable data directory) is not restarted for ever:
after MAX_FAST_FAILURES in a row the supervisor gives up on it — on the DNS
engine by stopping everything and exiting non-zero (so systemd or procd report
the failure), on the web UI by leaving it stopped while DNS goes on answering.
SIGTERM/SIGINT stop every child cleanly; SIGHUP is passed on so each reloads its
config.

`hearth run` checks the configuration, then replaces itself (same PID, so systemd's MAINPID stays
right) with ``python -m resolver.ops.supervisor``: this module imports nothing of Hearth but itself,
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
MAX_FAST_FAILURES = 5   # exits within STABLE_AFTER of the start, in a row, before giving up on a child


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: Optional[subprocess.Popen] = None
    started: float = 0.0
    backoff: float = 1.0
    restart_at: float = 0.0
    restarts: int = field(default=0)
    fast_failures: int = 0
    essential: bool = True      # giving up on it stops the whole service
    given_up: bool = False

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv)
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)


class Supervisor:
    def __init__(self, children: list[Child]):
        self.children = children
        self.stopping = False
        self.exit_code = 0

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
                if c.given_up:
                    continue
                if c.proc is None:
                    if now >= c.restart_at:
                        c.restarts += 1
                        c.start()
                    continue
                code = c.proc.poll()
                if code is None:
                    if now - c.started > STABLE_AFTER:
                        c.backoff = 1.0
                        c.fast_failures = 0
                    continue
                c.proc = None
                c.fast_failures = c.fast_failures + 1 if now - c.started < STABLE_AFTER else 1
                if c.fast_failures >= MAX_FAST_FAILURES:
                    self._give_up(c, code)
                    continue
                log.error("%s exited with code %s; restarting in %.0fs", c.name, code, c.backoff)
                c.restart_at = now + c.backoff
                c.backoff = min(c.backoff * 2, MAX_BACKOFF)
            time.sleep(0.2)
        return self.shutdown()

    def _give_up(self, c: Child, code: Optional[int]) -> None:
        c.given_up = True
        what = (f"{c.name} failed {c.fast_failures} times in a row within {STABLE_AFTER:.0f}s of starting "
                f"(last exit code {code}); its error is above")
        if c.essential:
            log.error("hearth: %s. Giving up: fix the cause, then start Hearth again", what)
            self.exit_code = 1
            self.stopping = True
        else:
            log.error("hearth: %s. It stays stopped (DNS goes on) until Hearth is restarted", what)

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
        return self.exit_code


def child_argv(command: str, config_file: Optional[str]) -> list[str]:
    argv = [sys.executable, "-m", "resolver.cli", command]
    if config_file:
        argv += ["--config", os.path.abspath(config_file)]
    return argv


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m resolver.ops.supervisor [--config FILE] [--no-web] [--log-level LEVEL]`` (run by `hearth run`)."""
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
        children.append(Child("web ui", child_argv("web", args.config), essential=False))
    return Supervisor(children).run()


if __name__ == "__main__":
    raise SystemExit(main())
