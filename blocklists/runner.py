"""Run a list update the one way Hearth does it: `hearth lists update` in its own process.

The scheduler and the web UI's "Update now" both come here, so every index is built by the same
code (:class:`blocklists.manager.ListManager`) from the configuration file as it is at that moment,
re-read by the new process: a feed added to the file and applied with `hearth reload` is in the
next index whoever starts it. The process gets a hard wall-clock limit (``feed.update_time_limit``);
past it, it is killed and the failure written to the update state, so a stuck update never blocks
the next one.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from .state import load_update_state, record_run_failure

log = logging.getLogger("hearth.lists")

# The update runs at a lower CPU priority than the engine that starts it: on a router whose one busy core it
# shares with the engine, the compile takes the time the engine leaves idle instead of delaying answers (p99
# during a 1 M-name swap at half the peak rate, both on one core: bench/README.md, tail_latency.py). 10, not
# 19: fully contended it still gets about a tenth of the core, well inside feed.update_time_limit.
UPDATE_NICENESS = 10


def update_argv(config_file: Optional[str], *, offline: bool = False, trigger: str = "scheduler") -> list[str]:
    argv = [sys.executable, "-m", "resolver.cli", "lists", "update", "--no-notify", "--trigger", trigger]
    if offline:
        argv.append("--offline")
    if config_file:
        argv += ["--config", os.path.abspath(config_file)]
    return argv


class Cancel:
    """Lets the caller stop a running update early (the engine shutting down): the process is killed,
    the lists in force stay, and the run is recorded as stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self.cancelled = False

    def attach(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._proc = proc
            if self.cancelled:
                proc.kill()

    def __call__(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()


def run_update(config_file: Optional[str], data_dir: str, time_limit: float, *, offline: bool = False,
               trigger: str = "scheduler", progress: Optional[Callable[[str], None]] = None,
               cancel: Optional[Cancel] = None) -> Optional[int]:
    """Run `hearth lists update` and wait for it; its exit status, or None when it was stopped at
    ``time_limit`` seconds (then the failure is recorded in ``DATA_DIR/lists/update.json``)."""
    lists_dir = Path(data_dir) / "lists"
    say = progress or (lambda line: log.info("lists update: %s", line))
    proc = subprocess.Popen(update_argv(config_file, offline=offline, trigger=trigger), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace")
    _lower_priority(proc.pid)
    if cancel is not None:
        cancel.attach(proc)
    reader = threading.Thread(target=_pump, args=(proc, say), name="lists-update-output", daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        code = proc.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        message = (f"stopped after {time.monotonic() - started:.0f} s, over feed.update_time_limit "
                   f"({time_limit:g} s): it did not finish (a download or the compile hung); "
                   "the lists in force stay")
        log.error("list update %s", message)
        say(f"update {message}")
        try:
            record_run_failure(lists_dir, message, pid=proc.pid)
        except OSError as exc:
            log.error("cannot record the failed list update in %s: %s", lists_dir, exc)
        return None
    reader.join(5)
    if code != 0:
        state = load_update_state(lists_dir)
        if state.run.pid == proc.pid and state.run.running:   # it died without writing its end
            why = ("stopped because Hearth was stopping; the next update runs it again"
                   if cancel is not None and cancel.cancelled
                   else f"the update process ended without finishing (exit status {code})")
            record_run_failure(lists_dir, why, pid=proc.pid)
    return code


def _lower_priority(pid: int) -> None:
    """Raise the update process's niceness by UPDATE_NICENESS above the engine's (set from here, not with a
    ``preexec_fn``, which is unsafe in a process with threads)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + UPDATE_NICENESS))
    except OSError as exc:   # gone already, or not allowed: it runs at the engine's priority
        log.debug("cannot lower the list update's priority: %s", exc)


def _pump(proc: subprocess.Popen, say: Callable[[str], None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            say(line.rstrip("\n"))
        except Exception:  # noqa: BLE001 - a progress consumer must not stop the pipe being drained
            pass
