"""The persisted state of list updates, read by `hearth lists status`, the web UI and `hearth doctor`.

Two files in ``DATA_DIR/lists/``, each replaced atomically:

``status.json``   one entry per list (:class:`ListStatus`): entries, last success, last attempt, error.
``update.json``   the provider feed as a source of its own (:class:`FeedStatus`: URL, title, installed
                  version, last check, last success, last error) and the last update run
                  (:class:`RunStatus`: who started it, when, how it ended, what it dropped and why).

A failure anywhere (a feed that does not verify, an update stopped at its time limit) is written
here, so every view of the lists shows it, not only the output of the update that met it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

STATUS_NAME = "status.json"
UPDATE_NAME = "update.json"


@dataclass
class ListStatus:
    id: str
    category: str
    origin: str                        # starter | config | feed
    url: str = ""
    entries: int = 0
    last_success: Optional[float] = None   # when this list was last fetched and verified (bundled: compiled)
    last_attempt: Optional[float] = None
    error: Optional[str] = None
    mandatory: bool = False
    invalid: int = 0
    skipped: dict = field(default_factory=dict)


@dataclass
class FeedStatus:
    url: str
    title: str = ""
    version: Optional[int] = None          # the installed (accepted) feed version
    last_check: Optional[float] = None
    last_success: Optional[float] = None   # when a manifest last verified and was applied
    error: Optional[str] = None            # why the last check failed, in plain words; None when it worked
    lists: int = 0
    mandatory: int = 0


@dataclass
class RunStatus:
    pid: Optional[int] = None
    trigger: str = ""                      # cli | ui | scheduler
    started: Optional[float] = None
    finished: Optional[float] = None
    running: bool = False
    offline: bool = False                  # compiled the copies at hand, downloaded nothing
    error: Optional[str] = None            # the run itself failed (stopped at its time limit, crashed)
    failed: list = field(default_factory=list)    # ids of lists that kept their previous copy
    removed: list = field(default_factory=list)   # "id: why" of sources dropped from the index


@dataclass
class UpdateState:
    feed: Optional[FeedStatus] = None
    run: RunStatus = field(default_factory=RunStatus)

    def problems(self) -> list[str]:
        """The feed's and the last run's failures, one plain sentence each (empty: nothing wrong)."""
        out = []
        if self.feed is not None and self.feed.error:
            out.append(f"feed {self.feed.url}: {self.feed.error}")
        if self.run.error and not self.run.running:
            out.append(f"last list update: {self.run.error}")
        return out


def _from_dict(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None


def load_list_status(lists_dir: Path) -> dict[str, ListStatus]:
    try:
        raw = json.loads((Path(lists_dir) / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for k, v in (raw.items() if isinstance(raw, dict) else ()):
        st = _from_dict(ListStatus, v)
        if st is not None:
            out[k] = st
    return out


def save_list_status(lists_dir: Path, status: dict[str, ListStatus]) -> None:
    write_json(Path(lists_dir) / STATUS_NAME, {k: dataclasses.asdict(v) for k, v in status.items()})


def load_update_state(lists_dir: Path) -> UpdateState:
    try:
        raw = json.loads((Path(lists_dir) / UPDATE_NAME).read_text())
    except (OSError, ValueError):
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    return UpdateState(feed=_from_dict(FeedStatus, raw.get("feed")),
                       run=_from_dict(RunStatus, raw.get("run")) or RunStatus())


def save_update_state(lists_dir: Path, state: UpdateState) -> None:
    Path(lists_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(lists_dir) / UPDATE_NAME, {"feed": dataclasses.asdict(state.feed) if state.feed else None,
                                               "run": dataclasses.asdict(state.run)})


def record_run_failure(lists_dir: Path, error: str, pid: Optional[int] = None) -> None:
    """Write down that an update run failed, from outside it (it was stopped, or it died)."""
    import time

    state = load_update_state(lists_dir)
    if pid is not None and state.run.pid not in (None, pid):
        state.run = RunStatus(pid=pid)
    state.run.pid = pid if pid is not None else state.run.pid
    state.run.running = False
    state.run.finished = time.time()
    state.run.error = error
    save_update_state(lists_dir, state)


def write_json(path: Path, data: Any) -> None:
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
