"""`hearth backup` / `hearth restore`: the configuration, the store and the keys in one tar.gz.

A backup is consistent while Hearth runs: the store is copied with SQLite's online backup API
(one read transaction, so it is a snapshot; WAL readers never block the engine's writers) and
checked with ``PRAGMA integrity_check`` before it goes into the archive.

Archive layout (``manifest.json`` first, so a reader can check it before the rest)::

    manifest.json          format, Hearth version, store schema, created, sha256 + size of every file
    config/hearth.yaml     the configuration file (absent when Hearth ran on embedded defaults)
    config/keys/...        a ``keys/`` folder beside the config file (feed signing keys), if any
    data/hearth.db         the store (a single file: journal_mode DELETE in the copy)
    data/...               other small state in data_dir (web secret, keys), not the engine's runtime files
    data/lists/...         with ``--with-lists``: downloaded list copies and their status (else rebuilt)

Restore refuses to touch a data_dir whose engine or web UI is running (stop the service first):
replacing the database under a live process would leave it writing to the old, unlinked file.
The files it replaces are moved into ``data_dir/pre-restore-<time>/`` first, the restored store is
migrated to this Hearth's schema (an older backup is upgraded), and a backup from a newer Hearth is
refused.

With ``store: postgresql://…`` the backup's store is restored into that database instead (copied as
``hearth store migrate --to`` does), and only into an empty one: a database other nodes already use is refused.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from resolver import __version__

FORMAT = "hearth-backup"
FORMAT_VERSION = 1
DB_NAME = "hearth.db"
# Files in data_dir that belong to a running process, never backed up or restored.
RUNTIME_FILES = {"engine.json", "hearth.sock", DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal"}
MAX_EXTRA_FILE = 16 * 1024 * 1024       # other data_dir files larger than this are not state: skipped
LISTS_KEEP = ("cache", "status.json")   # with --with-lists: the downloaded copies and their status


class BackupError(Exception):
    """A backup or a restore could not be done; the message says why and what to do."""


@dataclass
class Member:
    arcname: str
    path: Optional[str] = None     # a file on disk ...
    data: Optional[bytes] = None   # ... or bytes


# ---------------------------------------------------------------------------------------------
# backup

def copy_store(db_path: str, dest: str) -> dict:
    """Copy a live SQLite store with the online backup API; returns a summary of the copy."""
    if not os.path.exists(db_path):
        raise BackupError(f"no store at {db_path}: nothing to back up (has Hearth ever run with this data_dir?)")
    # Not mode=ro: a read-only connection cannot remove the -wal/-shm files it creates, and when root
    # makes a backup of a stopped Hearth they would stay behind, owned by root, unwritable for `hearth`.
    src = sqlite3.connect(db_path, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)   # pages=-1: the whole database inside one read transaction, a snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copied store fails its integrity check: {check}")
            summary = {"schema_version": dst.execute("PRAGMA user_version").fetchone()[0]}
            for table in ("profiles", "devices", "schedules", "query_log"):
                try:
                    summary[table] = dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                except sqlite3.Error:
                    pass
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the store {db_path}: {exc}") from None
    finally:
        src.close()
        fix_sidecar_owner(db_path)
    return summary


def fix_sidecar_owner(db_path: str) -> None:
    """Give SQLite's -wal/-shm files left by a root process to the owner of the database file."""
    if os.geteuid() != 0:
        return
    try:
        owner = os.stat(db_path)
    except OSError:
        return
    for suffix in ("-wal", "-shm"):
        try:
            st = os.stat(db_path + suffix)
            if (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(db_path + suffix, owner.st_uid, owner.st_gid)
        except OSError:
            pass


def _data_members(data_dir: Path, with_lists: bool) -> list[Member]:
    out = []
    for root, dirs, files in os.walk(data_dir):
        rel_root = Path(root).relative_to(data_dir)
        if rel_root == Path("."):
            # the lists are rebuilt from their sources; pre-restore copies are old backups
            dirs[:] = [d for d in dirs if not d.startswith("pre-restore-") and (d != "lists" or with_lists)]
        elif rel_root.parts[0] == "lists" and len(rel_root.parts) == 1:
            dirs[:] = [d for d in dirs if d in LISTS_KEEP]
        dirs.sort()
        for name in sorted(files):
            rel = rel_root / name
            path = Path(root) / name
            if rel_root == Path(".") and (name in RUNTIME_FILES or name.endswith((".tmp", ".lock"))):
                continue
            if rel.parts[0] == "lists" and len(rel.parts) == 2 and name not in LISTS_KEEP:
                continue   # index.bin, index.json: compiled again at start
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_EXTRA_FILE:
                continue
            out.append(Member(f"data/{rel.as_posix()}", path=str(path)))
    return out


def _config_members(config_file: Optional[str]) -> list[Member]:
    if not config_file:
        return []
    out = [Member("config/hearth.yaml", path=config_file)]
    keys = Path(config_file).resolve().parent / "keys"
    if keys.is_dir():
        for path in sorted(keys.rglob("*")):
            if path.is_file() and not path.is_symlink():
                out.append(Member(f"config/keys/{path.relative_to(keys).as_posix()}", path=str(path)))
    return out


def _sha256(member: Member) -> tuple[str, int]:
    h = hashlib.sha256()
    if member.data is not None:
        h.update(member.data)
        return h.hexdigest(), len(member.data)
    size = 0
    with open(member.path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def create_backup(config: Any, config_file: Optional[str], out: str, *, with_lists: bool = False) -> dict:
    """Write the backup archive ``out`` (atomically, mode 0600); returns its manifest."""
    from resolver.store.open import describe_store, is_postgres

    if is_postgres(getattr(config, "store", "")):
        raise BackupError(f"the store is the shared PostgreSQL database {describe_store(config)}: back it up with "
                          "pg_dump (see docs/campus.md); `hearth backup` saves an embedded SQLite store")
    data_dir = Path(config.data_dir)
    with tempfile.TemporaryDirectory(prefix="hearth-backup-") as tmp:
        db_copy = os.path.join(tmp, DB_NAME)
        store = copy_store(str(data_dir / DB_NAME), db_copy)
        members = _config_members(config_file) + [Member(f"data/{DB_NAME}", path=db_copy)]
        members += _data_members(data_dir, with_lists)
        files = []
        for m in members:
            digest, size = _sha256(m)
            files.append({"path": m.arcname, "sha256": digest, "size": size})
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "hearth_version": __version__,
            "created": time.time(), "host": socket.gethostname(),
            "config_file": os.path.abspath(config_file) if config_file else None,
            "data_dir": str(data_dir.resolve()), "with_lists": with_lists, "store": store, "files": files,
        }
        out_dir = os.path.dirname(os.path.abspath(out))
        fd, tmp_out = tempfile.mkstemp(prefix=".hearth-backup-", suffix=".tmp", dir=out_dir)
        try:
            os.fchmod(fd, 0o600)  # the store holds password hashes and the query log
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
                for m in members:
                    info = tar.gettarinfo(m.path, arcname=m.arcname)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o600
                    with open(m.path, "rb") as fh:
                        tar.addfile(info, fh)
            os.replace(tmp_out, out)
        except BaseException:
            try:
                os.unlink(tmp_out)
            except OSError:
                pass
            raise
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(data))


# ---------------------------------------------------------------------------------------------
# restore

def read_archive(path: str) -> tuple[dict, dict[str, bytes]]:
    """(manifest, {arcname: bytes}) of a backup, every file checked against the manifest."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            contents: dict[str, bytes] = {}
            for info in tar:
                name = info.name
                if not info.isfile() or name.startswith("/") or ".." in Path(name).parts:
                    raise BackupError(f"{path}: unexpected entry {name!r}: not a Hearth backup")
                fh = tar.extractfile(info)
                contents[name] = fh.read() if fh else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{path}: cannot read the archive: {exc}") from None
    try:
        manifest = json.loads(contents.pop("manifest.json"))
    except (KeyError, ValueError):
        raise BackupError(f"{path}: no readable manifest.json: not a Hearth backup") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a Hearth backup (format {manifest.get('format')!r})")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(f"{path}: backup format {manifest['format_version']} is newer than this Hearth "
                          f"understands ({FORMAT_VERSION}); upgrade Hearth first")
    listed = {f["path"]: f for f in manifest.get("files", [])}
    if set(listed) != set(contents):
        missing = sorted(set(listed) ^ set(contents))
        raise BackupError(f"{path}: archive and manifest disagree about {', '.join(missing[:5])}")
    for name, entry in listed.items():
        if hashlib.sha256(contents[name]).hexdigest() != entry["sha256"]:
            raise BackupError(f"{path}: {name} is damaged (sha256 mismatch)")
    if f"data/{DB_NAME}" not in contents:
        raise BackupError(f"{path}: the backup holds no store")
    return manifest, contents


def running_processes(config: Any) -> list[str]:
    """What of Hearth is running on this config's data_dir: [] when nothing is."""
    from resolver.service.control import call

    found = []
    try:
        if call(config.control_socket, "ping", timeout=1.0).get("ok"):
            found.append(f"the DNS engine (control socket {config.control_socket})")
    except (OSError, ValueError):
        state = Path(config.data_dir) / "engine.json"
        try:
            pid = int(json.loads(state.read_text())["pid"])
            os.kill(pid, 0)
            found.append(f"the DNS engine (pid {pid} in {state})")
        except PermissionError:
            found.append(f"the DNS engine (pid in {state})")
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if getattr(config.web, "enabled", True) and web_answers(config.web.listen):
        found.append(f"the web UI (http://{config.web.listen}/)")
    return found


def web_answers(listen: str, timeout: float = 1.0) -> Optional[dict]:
    """The web UI's /healthz JSON when a Hearth web UI answers on ``listen``, else None."""
    import urllib.error
    import urllib.request

    from resolver.engine.dnsconfig import parse_listen

    host, port = parse_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a local URL we built
            data = json.loads(resp.read(65536))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, dict) and data.get("status") == "ok" else None


def restore_backup(config: Any, config_file: Optional[str], archive: str, *, restore_config: bool = True) -> dict:
    """Restore ``archive`` into ``config.data_dir`` (and ``config_file``). Returns a report dict.

    Refuses while Hearth runs on that data_dir. Replaced files go to data_dir/pre-restore-<time>/.
    """
    from resolver.store.open import is_postgres
    from resolver.store.protocol import SchemaTooNewError
    from resolver.store.sqlite import MIGRATIONS, open_store

    manifest, contents = read_archive(archive)
    schema = manifest.get("store", {}).get("schema_version", 0)
    if schema > len(MIGRATIONS):
        raise BackupError(f"{archive}: the store has schema {schema}, newer than this Hearth ({len(MIGRATIONS)}); "
                          "upgrade Hearth before restoring it")
    running = running_processes(config)
    if running:
        raise BackupError("Hearth is running on " + os.path.abspath(config.data_dir) + ": " + "; ".join(running)
                          + ". Stop it first (sudo systemctl stop hearth, or /etc/init.d/hearth stop on OpenWrt), "
                          "restore, then start it again")
    postgres = is_postgres(getattr(config, "store", ""))
    moved_rows: Optional[dict[str, int]] = None
    if postgres:   # before anything in data_dir changes: a refusal leaves this node as it was
        moved_rows = _restore_into_postgres(config, contents[f"data/{DB_NAME}"])
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    owner = data_dir.stat()
    aside = data_dir / time.strftime("pre-restore-%Y%m%d-%H%M%S")
    n = 1
    while aside.exists():
        n += 1
        aside = data_dir / (time.strftime("pre-restore-%Y%m%d-%H%M%S") + f"-{n}")
    moved: list[str] = []

    def move_aside(path: Path, label: str) -> None:
        if path.exists() or path.is_symlink():
            target = aside / label
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target))
            moved.append(label)

    written = []
    # the store: the old database (and its WAL) aside, the copy renamed into place, then migrated
    if not postgres:
        for suffix in ("", "-wal", "-shm", "-journal"):
            move_aside(data_dir / f"{DB_NAME}{suffix}", f"{DB_NAME}{suffix}")
    if manifest.get("with_lists"):
        move_aside(data_dir / "lists", "lists")
    for name, data in contents.items():
        if not name.startswith("data/"):
            continue
        rel = name[len("data/"):]
        if postgres and rel == DB_NAME:
            continue   # its rows are in PostgreSQL now
        target = data_dir / rel
        if rel != DB_NAME:
            move_aside(target, rel)
        _write_file(target, data, owner)
        written.append(str(target))
    if postgres:
        migrated_to = len(MIGRATIONS)
    else:
        try:
            store = open_store(str(data_dir))
            migrated_to = store.schema_version()
            store.close()
        except (SchemaTooNewError, sqlite3.Error) as exc:
            raise BackupError(f"the restored store cannot be opened: {exc}; the previous files are in {aside}") \
                from None
        _chown_tree(data_dir, owner, [DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"])

    config_report = None
    if postgres and restore_config and "config/hearth.yaml" in contents:
        # this node's configuration names the PostgreSQL store; the backup's (an embedded SQLite appliance's)
        # would point it back at data_dir/hearth.db: keep it, and put the backup's copy aside to compare
        aside.mkdir(parents=True, exist_ok=True)
        for name, data in contents.items():
            if name.startswith("config/"):
                _write_file(aside / "from-backup" / name[len("config/"):], data, owner, mode=0o600)
        config_report = (f"kept {config_file or 'the configuration file'} (it names the PostgreSQL store); the "
                         f"backup's configuration and keys are in {aside / 'from-backup'}")
    elif restore_config and "config/hearth.yaml" in contents:
        if not config_file:
            config_report = "the backup's configuration was not restored: give -c FILE (or $HEARTH_CONFIG)"
        else:
            cpath = Path(config_file)
            if cpath.exists():
                aside.mkdir(parents=True, exist_ok=True)
                shutil.copy2(str(cpath), str(aside / "hearth.yaml"))
                moved.append("hearth.yaml")
            cowner = cpath.parent.stat() if cpath.parent.exists() else owner
            _write_file(cpath, contents["config/hearth.yaml"], cowner, mode=0o640)
            for name, data in contents.items():
                if name.startswith("config/keys/"):
                    target = cpath.parent / "keys" / name[len("config/keys/"):]
                    _write_file(target, data, cowner, mode=0o600)
            config_report = str(cpath)
    return {"manifest": manifest, "data_dir": str(data_dir.resolve()), "moved_aside": str(aside) if moved else None,
            "files": written, "schema_version": migrated_to, "config": config_report,
            "store": _describe(config) if postgres else str(data_dir.resolve() / DB_NAME), "rows": moved_rows}


def _describe(config: Any) -> str:
    from resolver.store.open import describe_store

    return describe_store(config)


def _restore_into_postgres(config: Any, db_bytes: bytes) -> dict[str, int]:
    """Copy the backup's SQLite store (migrated to this Hearth's schema in a temporary folder) into the configured
    PostgreSQL database, which must be empty; returns the rows moved per table. Nothing changes on a refusal."""
    from resolver.store.open import STORE_ERRORS, open_store as open_configured
    from resolver.store.sqlite import SQLiteStore
    from resolver.store.transfer import TargetNotEmpty, migrate_sqlite_to_postgres

    where = _describe(config)
    with tempfile.TemporaryDirectory(prefix="hearth-restore-") as tmp:
        path = os.path.join(tmp, DB_NAME)
        with open(path, "wb") as fh:
            fh.write(db_bytes)
        source = target = None
        try:
            source = SQLiteStore(path)
            source.migrate()
            target = open_configured(config, connections=1)
            return migrate_sqlite_to_postgres(source, target)
        except TargetNotEmpty as exc:
            raise BackupError(f"cannot restore into {where}: {exc}. A backup goes into an empty PostgreSQL database "
                              "only (other nodes may be using this one): create an empty database and point "
                              "`store:` at it, or restore into an embedded store (`store:` empty) and move it with "
                              "`hearth store migrate --to postgresql://…`") from None
        except (ValueError, *STORE_ERRORS) as exc:
            raise BackupError(f"cannot restore into {where}: {exc}") from None
        finally:
            for s in (source, target):
                if s is not None:
                    s.close()


def _write_file(target: Path, data: bytes, owner: os.stat_result, mode: int = 0o640) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restore-tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    _chown(tmp, owner)
    os.replace(tmp, target)


def _chown(path: Path, owner: os.stat_result) -> None:
    """As root, give restored files to the owner of their folder (the `hearth` user)."""
    if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
        try:
            os.chown(path, owner.st_uid, owner.st_gid)
        except OSError:
            pass


def _chown_tree(data_dir: Path, owner: os.stat_result, names: list[str]) -> None:
    for name in names:
        path = data_dir / name
        if path.exists():
            _chown(path, owner)
