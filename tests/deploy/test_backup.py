"""`hearth backup` / `hearth restore`: a populated store round-trips while the engine keeps answering."""
from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import threading
import time

import yaml

from resolver.store.protocol import QueryRow
from resolver.store.sqlite import open_store
from tests.deploy.conftest import run_cli, write_config
from tests.dnsclient import ask

QUERY_ROWS = 100_000


def _populate(eng) -> None:
    cfg = eng.config_path
    for args in (("profile", "add", "Kids", "--preset", "child"),
                 ("device", "add", "An tablet", "--ip", "192.168.1.23", "--profile", "Kids"),
                 ("schedule", "add", "Kids", "--name", "bedtime", "--days", "all", "--from", "21:00", "--to", "07:00",
                  "--block-all")):
        res = run_cli(*args, config=cfg)
        assert res.returncode == 0, res.stderr
    store = open_store(str(eng.data_dir))
    now = time.time()
    rows = [QueryRow(now - i, "192.168.1.23", f"n{i}.example.org", 1, 0, "192.0.2.1", "udp://x", 1.5, False, None)
            for i in range(QUERY_ROWS)]
    for i in range(0, len(rows), 20_000):
        store.add_queries(rows[i:i + 20_000])
    store.close()


def _db(path):
    con = sqlite3.connect(str(path))
    try:
        return {
            "profiles": sorted(r[0] for r in con.execute("SELECT name FROM profiles")),
            "devices": sorted(r[0] for r in con.execute("SELECT name FROM devices")),
            "schedules": con.execute("SELECT COUNT(*) FROM schedules").fetchone()[0],
            "queries": con.execute("SELECT COUNT(*) FROM query_log").fetchone()[0],
        }
    finally:
        con.close()


def test_round_trip_of_a_populated_store_while_queries_are_answered(tmp_path, upstream, start_engine):
    eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]}})
    _populate(eng)
    original_config = eng.config_path.read_text()

    stop, answered, lost = threading.Event(), [0], []

    def client():   # cache hits and misses (forwarded to the fake upstream) all through the backup
        i = 0
        while not stop.is_set():
            i += 1
            name = "www.example.com" if i % 2 else f"miss{i}.example.net"
            reply = ask(name, "A", eng.port, timeout=2.0)
            if reply is None:
                lost.append(name)
            else:
                answered[0] += 1

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    time.sleep(0.3)
    archive = tmp_path / "hearth-backup.tar.gz"
    t0 = time.monotonic()
    res = run_cli("backup", str(archive), config=eng.config_path)
    took = time.monotonic() - t0
    time.sleep(0.3)
    stop.set()
    thread.join(5)
    assert res.returncode == 0, res.stderr
    assert "backup written" in res.stdout
    assert not lost, f"{len(lost)} queries unanswered during the backup ({took:.1f}s)"
    assert answered[0] > 20

    # the archive: a manifest first, checksums, the store as a single consistent file, the config
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert names[0] == "manifest.json"
        manifest = json.load(tar.extractfile("manifest.json"))
        assert "config/hearth.yaml" in names and "data/hearth.db" in names
        assert not any(n.endswith(("-wal", "-shm", "engine.json", "hearth.sock")) for n in names)
        assert tar.extractfile("config/hearth.yaml").read().decode() == original_config
        (tmp_path / "copy.db").write_bytes(tar.extractfile("data/hearth.db").read())
    assert manifest["format"] == "hearth-backup" and manifest["store"]["devices"] == 1
    assert {f["path"] for f in manifest["files"]} == set(names) - {"manifest.json"}
    saved = _db(tmp_path / "copy.db")
    assert saved["devices"] == ["An tablet"] and "Kids" in saved["profiles"] and saved["schedules"] == 1
    assert saved["queries"] >= QUERY_ROWS

    # restore refuses while the engine runs on that data_dir
    res = run_cli("restore", str(archive), config=eng.config_path)
    assert res.returncode == 1 and "running" in res.stderr and "systemctl stop hearth" in res.stderr

    # change things after the backup, then restore with the engine stopped
    eng.stop()
    assert run_cli("device", "remove", "An tablet", config=eng.config_path).returncode == 0
    assert run_cli("profile", "add", "Guests", "--preset", "guest", config=eng.config_path).returncode == 0
    eng.config_path.write_text(original_config + "# edited after the backup\n")
    res = run_cli("restore", str(archive), config=eng.config_path)
    assert res.returncode == 0, res.stderr
    restored = _db(eng.data_dir / "hearth.db")
    assert restored["devices"] == ["An tablet"] and "Guests" not in restored["profiles"]
    assert restored["queries"] == saved["queries"]
    assert eng.config_path.read_text() == original_config
    aside = [p for p in eng.data_dir.iterdir() if p.name.startswith("pre-restore-")]
    assert len(aside) == 1 and (aside[0] / "hearth.db").exists() and (aside[0] / "hearth.yaml").exists()
    assert "edited after the backup" in (aside[0] / "hearth.yaml").read_text()
    assert not (eng.data_dir / "hearth.db-wal").exists() or (eng.data_dir / "hearth.db-wal").stat().st_size == 0

    # the engine starts on the restored store and answers
    eng.start()
    assert ask("www.example.com", "A", eng.port) is not None
    listing = run_cli("device", "list", config=eng.config_path)
    assert "An tablet" in listing.stdout


def test_restore_onto_a_new_machine_and_refusals(tmp_path, upstream, start_engine):
    eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]}})
    assert run_cli("profile", "add", "Teens", "--preset", "teen", config=eng.config_path).returncode == 0
    (eng.data_dir / "web_secret").write_text("s3cret\n")   # other small state in data_dir travels too
    archive = tmp_path / "b.tar.gz"
    assert run_cli("backup", str(archive), config=eng.config_path).returncode == 0
    eng.stop()

    # a new machine: another data_dir, an existing config kept with --no-config
    new = tmp_path / "new"
    new.mkdir()
    cfg = write_config(new / "hearth.yaml", {"data_dir": str(new / "data"), "dns": {
        "listen": ["127.0.0.1:0"], "upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
        "blocking": {"starter_lists": False}})
    kept = cfg.read_text()
    dry = run_cli("restore", "--dry-run", str(archive), config=cfg)
    assert dry.returncode == 0 and "data/hearth.db" in dry.stdout and not (new / "data").exists()
    res = run_cli("restore", "--no-config", str(archive), config=cfg)
    assert res.returncode == 0, res.stderr
    assert cfg.read_text() == kept
    assert "Teens" in _db(new / "data" / "hearth.db")["profiles"]
    assert (new / "data" / "web_secret").read_text() == "s3cret\n"

    # damaged: a file that does not match its checksum
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(bad, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read()
            if info.name == "data/web_secret":
                data = b"tampered\n"
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    res = run_cli("restore", str(bad), config=cfg)
    assert res.returncode == 1 and "damaged" in res.stderr

    # from a newer Hearth (store schema beyond ours): refused, nothing touched
    newer = tmp_path / "newer.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(newer, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read()
            if info.name == "manifest.json":
                m = json.loads(data)
                m["store"]["schema_version"] = 999
                data = json.dumps(m).encode()
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    before = (new / "data" / "hearth.db").read_bytes()
    res = run_cli("restore", str(newer), config=cfg)
    assert res.returncode == 1 and "newer" in res.stderr
    assert (new / "data" / "hearth.db").read_bytes() == before

    # not a backup at all
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    res = run_cli("restore", str(junk), config=cfg)
    assert res.returncode == 1 and "cannot read the archive" in res.stderr


def test_backup_without_a_store_says_so(tmp_path):
    cfg = write_config(tmp_path / "hearth.yaml", {"data_dir": str(tmp_path / "nothing"),
                                                  "dns": {"upstreams": ["udp://127.0.0.1:9"]}})
    res = run_cli("backup", str(tmp_path / "x.tar.gz"), config=cfg)
    assert res.returncode == 1 and "no store" in res.stderr
    assert not (tmp_path / "x.tar.gz").exists() and not list(tmp_path.glob(".hearth-backup-*"))
    assert yaml.safe_load(cfg.read_text())["data_dir"].endswith("nothing")


def test_backup_and_doctor_of_a_stopped_store_leave_no_files_behind(tmp_path):
    data = tmp_path / "data"
    open_store(str(data)).close()
    cfg = write_config(tmp_path / "hearth.yaml", {"data_dir": str(data), "dns": {"upstreams": ["udp://127.0.0.1:9"]}})
    assert sorted(p.name for p in data.iterdir()) == ["hearth.db"]
    assert run_cli("backup", str(tmp_path / "b.tar.gz"), config=cfg).returncode == 0
    assert run_cli("doctor", "--only", "store", config=cfg).returncode == 0
    # no -wal/-shm left (as root they would belong to root and lock the `hearth` user out)
    assert sorted(p.name for p in data.iterdir()) == ["hearth.db"]


def test_restore_into_an_empty_postgres_store_and_refusal_of_a_used_one(tmp_path, postgres_url):
    # an embedded appliance's backup: a profile, a device, a schedule and query-log rows
    home = tmp_path / "home"
    home.mkdir()
    cfg = write_config(home / "hearth.yaml", {"data_dir": str(home / "data"),
                                              "dns": {"upstreams": ["udp://127.0.0.1:9"]}})
    for args in (("profile", "add", "Kids", "--preset", "child"),
                 ("device", "add", "An tablet", "--ip", "192.168.1.23", "--profile", "Kids"),
                 ("schedule", "add", "Kids", "--name", "bedtime", "--days", "all", "--from", "21:00", "--to",
                  "07:00", "--block-all")):
        assert run_cli(*args, config=cfg).returncode == 0
    store = open_store(str(home / "data"))
    now = time.time()
    store.add_queries([QueryRow(now - i, "192.168.1.23", f"n{i}.example.org", 1, 0, "192.0.2.1", "udp://x", 1.0,
                                False, None) for i in range(500)])
    store.close()
    (home / "data" / "web_secret").write_text("s3cret\n")
    archive = tmp_path / "b.tar.gz"
    assert run_cli("backup", str(archive), config=cfg).returncode == 0

    # a node of a campus: store in PostgreSQL; its configuration must survive the restore
    node = tmp_path / "node"
    node.mkdir()
    ncfg = write_config(node / "hearth.yaml", {"data_dir": str(node / "data"), "store": postgres_url,
                                               "node_name": "gw1", "dns": {"upstreams": ["udp://127.0.0.1:9"]}})
    kept = ncfg.read_text()
    res = run_cli("restore", str(archive), config=ncfg)
    assert res.returncode == 0, res.stderr
    assert "500 query-log entries" in " ".join(res.stdout.split()) and "gw1" not in res.stderr
    assert ncfg.read_text() == kept and "it names the PostgreSQL store" in res.stdout
    assert not (node / "data" / "hearth.db").exists()                       # the rows went to PostgreSQL
    assert (node / "data" / "web_secret").read_text() == "s3cret\n"
    from_backup = list((node / "data").glob("pre-restore-*/from-backup/hearth.yaml"))
    assert len(from_backup) == 1 and "store" not in yaml.safe_load(from_backup[0].read_text())
    # what the node's users see: the CLI on the PostgreSQL store
    assert "An tablet" in run_cli("device", "list", config=ncfg).stdout
    assert "bedtime" in run_cli("schedule", "list", config=ncfg).stdout
    import psycopg
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM query_log").fetchone()[0] == 500

    # again, now that the database is in use: refused with a clear way forward, nothing changed
    assert run_cli("profile", "add", "Teens", "--preset", "teen", config=ncfg).returncode == 0
    res = run_cli("restore", str(archive), config=ncfg)
    assert res.returncode == 1
    assert "holds data already" in res.stderr and "hearth store migrate --to" in res.stderr
    assert "Teens" in run_cli("profile", "list", config=ncfg).stdout
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM query_log").fetchone()[0] == 500
