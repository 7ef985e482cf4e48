"""blocklists.manager: what the update state records ("last success" only for a list really fetched and
checked; removed sources said so; a run's start and end), on file:// lists, without sockets."""
from __future__ import annotations

import time

import pytest

from blocklists.manager import ListConfig, ListManager, UpdateBusy
from blocklists.state import load_update_state
from resolver.service.config import Config
from resolver.policy.blocking import BlockingConfig


def _config(tmp_path, ids=("a", "b")) -> Config:
    lists = []
    for i in ids:
        path = tmp_path / f"{i}.txt"
        if not path.exists():
            path.write_text(f"{i}-blocked.example\n")
        lists.append(ListConfig(id=i, url=f"file://{path}", format="domains", category="adult"))
    return Config(data_dir=str(tmp_path / "data"), blocking=BlockingConfig(starter_lists=False), lists=lists)


def _success(manager: ListManager) -> dict:
    return {r.id: r.last_success for r in manager.status()}


def test_last_success_moves_only_for_lists_fetched_and_checked(tmp_path):
    manager = ListManager(_config(tmp_path), progress=lambda _m: None)
    manager.update(trigger="cli")
    first = _success(manager)
    assert first["a"] and first["b"]
    time.sleep(0.02)
    manager.update(only={"a"})                      # `hearth lists update --list a`
    second = _success(manager)
    assert second["a"] > first["a"] and second["b"] == first["b"]
    manager.update(fetch=False)                     # offline: nothing was fetched
    assert _success(manager) == second
    (tmp_path / "b.txt").write_text("<html><body>oops</body></html>\n")
    time.sleep(0.02)
    report = manager.update()
    third = _success(manager)
    assert report["lists"]["b"]["error"] and third["b"] == second["b"] and third["a"] > second["a"]
    run = load_update_state(manager.dir).run
    assert run.failed == ["b"] and not run.running and run.finished >= run.started and run.trigger == "cli"


def test_a_source_leaves_the_index_only_when_the_config_drops_it_and_it_is_said(tmp_path):
    lines: list[str] = []
    ListManager(_config(tmp_path), progress=lines.append).update()
    report = ListManager(_config(tmp_path, ids=("a",)), progress=lines.append).update()
    assert set(report["lists"]) == {"a"}
    assert report["removed"] == ["b: no longer in the configuration (lists:)"]
    assert any(line.startswith("b: removed from the index") for line in lines)
    assert load_update_state(tmp_path / "data" / "lists").run.removed == report["removed"]
    assert "b: removed" in (tmp_path / "data" / "lists" / "update.log").read_text()


def test_a_running_update_holds_the_lock(tmp_path):
    manager = ListManager(_config(tmp_path), progress=lambda _m: None)
    manager.dir.mkdir(parents=True)
    fd = manager._acquire_lock()
    try:
        with pytest.raises(UpdateBusy, match="another list update is running"):
            ListManager(_config(tmp_path), progress=lambda _m: None).update()
    finally:
        import os

        os.close(fd)
    ListManager(_config(tmp_path), progress=lambda _m: None).update()
