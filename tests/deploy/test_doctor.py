"""`hearth doctor`: a healthy engine passes; a stopped upstream, a stale list, a taken port and a stopped
engine are caught with what to fix, and the exit status says so."""
from __future__ import annotations

import json
import socket
import time

from resolver.service.config import Config
from resolver.ops.doctor import check_lists, check_time
from tests.deploy.conftest import run_cli, write_config


def doctor(config, *skip):
    args = ["doctor", "--json", "--timeout", "1"]
    for s in skip:
        args += ["--skip", s]
    res = run_cli(*args, config=config)
    data = json.loads(res.stdout)
    return res.returncode, data, {c["name"]: c for c in data["checks"]}, data["checks"]


def statuses(checks, name):
    return [c["status"] for c in checks if c["name"] == name]


def test_doctor_catches_a_stopped_upstream_and_a_stale_list(tmp_path, upstream, start_engine):
    lst = tmp_path / "gambling.txt"
    lst.write_text("casino.example\n")
    eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                        "lists": [{"id": "gamb", "url": f"file://{lst}", "format": "domains", "category": "gambling"}]})
    assert run_cli("lists", "update", config=eng.config_path).returncode == 0

    code, data, by, checks = doctor(eng.config_path, "time", "web")
    assert code == 0, checks
    assert data["ok"] and statuses(checks, "upstreams") == ["ok"] and statuses(checks, "lists") == ["ok"]
    assert by["engine"]["status"] == "ok" and by["ports"]["status"] == "ok" and by["store"]["status"] == "ok"
    assert by["web"]["status"] == "skip"

    # the upstream stops: caught, named, with a fix; exit status 1
    port = upstream.port
    upstream.stop()
    code, data, by, checks = doctor(eng.config_path, "time", "web")
    assert code == 1 and not data["ok"]
    ups = [c for c in checks if c["name"] == "upstreams"]
    assert ups[0]["status"] == "fail" and f"udp://127.0.0.1:{port}" in ups[0]["message"] and ups[0]["fix"]

    # the list's last success is long ago (missed more than two daily updates): stale
    status_path = eng.data_dir / "lists" / "status.json"
    status = json.loads(status_path.read_text())
    status["gamb"]["last_success"] = time.time() - 5 * 86400
    status["gamb"]["error"] = "HTTP 404"
    status_path.write_text(json.dumps(status))
    code, data, by, checks = doctor(eng.config_path, "time", "web", "upstreams")
    assert code == 1
    lists = [c for c in checks if c["name"] == "lists"]
    assert lists[0]["status"] == "fail" and "gamb" in lists[0]["message"] and "stale" in lists[0]["message"]
    assert "HTTP 404" in lists[0]["message"] and "hearth lists update" in lists[0]["fix"]

    # the human form prints the fix under the problem
    res = run_cli("doctor", "--skip", "time", "--skip", "web", "--timeout", "1", config=eng.config_path)
    assert res.returncode == 1
    assert "FAIL  upstreams" in res.stdout and "fix:" in res.stdout and "problem(s)" in res.stdout

    # the engine stops: caught
    eng.stop()
    code, data, by, checks = doctor(eng.config_path, "time", "web", "upstreams", "lists")
    assert code == 1 and by["engine"]["status"] == "fail" and "systemctl start hearth" in by["engine"]["fix"]


def test_doctor_names_what_holds_the_dns_port(tmp_path):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    try:
        cfg = write_config(tmp_path / "hearth.yaml", {
            "data_dir": str(tmp_path / "data"), "blocking": {"starter_lists": False},
            "dns": {"listen": [f"127.0.0.1:{port}"], "upstreams": ["udp://127.0.0.1:9"]}})
        code, data, by, checks = doctor(cfg, "time", "web", "upstreams", "lists", "engine", "store")
        assert code == 1
        assert by["ports"]["status"] == "fail" and "in use by" in by["ports"]["message"]
        assert by["ports"]["fix"]
    finally:
        udp.close()
    code, data, by, checks = doctor(cfg, "time", "web", "upstreams", "lists", "engine", "store")
    assert code == 0 and by["ports"]["status"] == "ok"
    assert run_cli("doctor", "--skip", "nonsense", config=cfg).returncode == 2


def test_list_and_clock_rules(tmp_path):
    config = Config(data_dir=str(tmp_path))
    assert check_time(config, now=978307200)[0].status == "fail"           # 2001: the clock was never set
    assert check_time(config)[0].status in ("ok", "warn")                  # now: plausible, synced or not
    # no compiled index while lists are wanted: nothing is blocked, say so
    checks = check_lists(config)
    assert checks[0].status == "fail" and "hearth lists update" in checks[0].fix


def test_doctor_flags_each_ticked_category_with_no_names(tmp_path):
    """A line per profile and ticked category that no list gives a name; the bundled lists cover every preset."""
    lst = tmp_path / "gambling.txt"
    lst.write_text("casino.example\n")
    base = {"data_dir": str(tmp_path / "data"), "dns": {"listen": ["127.0.0.1:0"], "upstreams": ["udp://127.0.0.1:9"]},
            "lists": [{"id": "gamb", "url": f"file://{lst}", "format": "domains", "category": "gambling"}]}
    cfg = write_config(tmp_path / "hearth.yaml", {**base, "blocking": {"starter_lists": False}})
    assert run_cli("lists", "update", config=cfg).returncode == 0
    assert run_cli("profile", "add", "Kids", "--preset", "child", config=cfg).returncode == 0
    assert run_cli("profile", "set", "Kids", "--add-categories", "homework", config=cfg).returncode == 0

    code, data, by, checks = doctor(cfg, "ports", "upstreams", "time", "engine", "web")
    flagged = [c for c in checks if c["name"] == "categories"]
    assert code == 0 and {c["status"] for c in flagged} == {"warn"}      # a warning, not a failure
    messages = [c["message"] for c in flagged]
    for category in ("adult", "violence", "drugs", "dating", "social", "ads", "trackers", "malware", "phishing",
                     "scam", "bypass", "homework"):
        assert f"profile Kids: {category} is ticked but has 0 names: add a list or a feed" in messages, messages
    assert not any(": gambling " in m for m in messages)                 # the subscribed list gives it names
    # the default profile (devices nobody has set up) ticks its own fixed set, flagged the same way
    assert "profile default: adult is ticked but has 0 names: add a list or a feed" in messages
    assert not any("profile default: social" in m for m in messages)     # not in the default's set
    assert all("category:" in c["fix"] and "hearth lists update" in c["fix"] for c in flagged)
    human = run_cli("doctor", "--only", "categories", config=cfg)
    assert "WARN" in human.stdout and "profile Kids: social is ticked but has 0 names" in human.stdout

    # the bundled starter lists on: only the custom category is left without names
    cfg = write_config(tmp_path / "hearth.yaml", {**base, "blocking": {"starter_lists": True}})
    assert run_cli("lists", "update", "--offline", config=cfg).returncode == 0
    code, data, by, checks = doctor(cfg, "ports", "upstreams", "time", "engine", "web")
    assert [c["message"] for c in checks if c["name"] == "categories"] == [
        "profile Kids: homework is ticked but has 0 names: add a list or a feed"]

    # a list of the custom category is subscribed: nothing to flag; unsubscribed again: flagged again
    hw = tmp_path / "homework.txt"
    hw.write_text("games-at-school.example\n")
    hw_list = {"id": "hw", "url": f"file://{hw}", "format": "domains", "category": "homework"}
    cfg = write_config(tmp_path / "hearth.yaml", {**base, "lists": [hw_list], "blocking": {"starter_lists": True}})
    assert run_cli("lists", "update", config=cfg).returncode == 0
    code, data, by, checks = doctor(cfg, "ports", "upstreams", "time", "engine", "web")
    assert [c["status"] for c in checks if c["name"] == "categories"] == ["ok"]
    cfg = write_config(tmp_path / "hearth.yaml", {**base, "lists": [], "blocking": {"starter_lists": True}})
    assert run_cli("lists", "update", config=cfg).returncode == 0
    code, data, by, checks = doctor(cfg, "ports", "upstreams", "time", "engine", "web")
    assert [c["message"] for c in checks if c["name"] == "categories"] == [
        "profile Kids: homework is ticked but has 0 names: add a list or a feed"]


def test_doctor_checks_a_shared_postgresql_store(tmp_path, postgres_url):
    from types import SimpleNamespace

    from resolver.ops.doctor import check_store
    from resolver.store.open import open_store

    config = SimpleNamespace(store=postgres_url, node_name="gw1", data_dir=str(tmp_path / "data"))
    [before] = check_store(config)
    assert before.status == "warn" and "schema 0, this Hearth migrates it" in before.message
    open_store(config).close()
    [after] = check_store(config)
    assert after.status == "ok" and "shared store reachable" in after.message
    gone = SimpleNamespace(store="postgresql://hearth@127.0.0.1:1/none", node_name="", data_dir=str(tmp_path))
    [down] = check_store(gone)
    assert down.status == "fail" and "the database is unavailable" in down.message
