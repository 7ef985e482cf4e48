"""The `hearth` commands for operating an appliance: `backup`, `restore`, `doctor`.

They read the configuration like every command (``-c/--config FILE`` or ``$HEARTH_CONFIG``).
Problems print one line on standard error and exit 1; a broken configuration exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from resolver.service.config import load_for_command


def _load(args: argparse.Namespace, command: str):
    return load_for_command(getattr(args, "config", None), command)


def cmd_backup(args: argparse.Namespace) -> int:
    from resolver.ops.backup import BackupError, create_backup

    config, path = _load(args, "backup")
    try:
        manifest = create_backup(config, path, args.file, with_lists=args.with_lists)
    except (BackupError, OSError) as exc:
        print(f"hearth backup: {exc}", file=sys.stderr)
        return 1
    store = manifest["store"]
    size = sum(f["size"] for f in manifest["files"])
    print(f"backup written to {args.file}: {len(manifest['files'])} files, {size / 1024:.0f} KiB before "
          f"compression; store schema {store.get('schema_version')}, {store.get('profiles', 0)} profiles, "
          f"{store.get('devices', 0)} devices, {store.get('query_log', 0)} query-log entries"
          + ("" if path else "; no configuration file (embedded defaults)"))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from resolver.ops.backup import BackupError, read_archive, restore_backup

    config, path = _load(args, "restore")
    if args.dry_run:
        try:
            manifest, _contents = read_archive(args.file)
        except BackupError as exc:
            print(f"hearth restore: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=1))
        for f in manifest["files"]:
            print(f"  {f['path']} ({f['size']} bytes)")
        return 0
    try:
        report = restore_backup(config, path, args.file, restore_config=not args.no_config)
    except (BackupError, OSError) as exc:
        print(f"hearth restore: {exc}", file=sys.stderr)
        return 1
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(report["manifest"]["created"]))
    print(f"restored the backup of {created} from {report['manifest'].get('host', '?')} into {report['data_dir']} "
          f"(store schema {report['schema_version']})")
    if report.get("rows") is not None:
        print(f"store: {report['store']}, rows restored:")
        for label, n in report["rows"].items():
            print(f"  {n:>10} {label}")
    if report["config"]:
        print(f"configuration: {report['config']}")
    if report["moved_aside"]:
        print(f"the files it replaced are in {report['moved_aside']}")
    print("start Hearth again: sudo systemctl start hearth (OpenWrt: /etc/init.d/hearth start)")
    return 0


SYMBOL = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def cmd_doctor(args: argparse.Namespace) -> int:
    from resolver.ops.doctor import CHECKS, run_checks

    config, path = _load(args, "doctor")
    skip = frozenset(args.skip or ())
    if args.only:
        skip = frozenset(set(CHECKS) - set(args.only)) | skip
        unknown = sorted(set(args.only) - set(CHECKS))
        if unknown:
            print(f"hearth doctor: unknown check {unknown[0]!r} (checks: {', '.join(CHECKS)})", file=sys.stderr)
            return 2
    unknown = sorted(skip - set(CHECKS))
    if unknown:
        print(f"hearth doctor: unknown check {unknown[0]!r} (checks: {', '.join(CHECKS)})", file=sys.stderr)
        return 2
    results = run_checks(config, path, skip=skip, timeout=args.timeout)
    failed = [r for r in results if r.status == "fail"]
    warned = [r for r in results if r.status == "warn"]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [r.as_dict() for r in results]}, indent=1))
    else:
        for r in results:
            if args.only and r.status == "skip" and r.message.startswith("skipped"):
                continue
            print(f"{SYMBOL.get(r.status, r.status)}  {r.name:<9}  {r.message}")
            if r.fix and r.status in ("fail", "warn"):
                print(f"{'':17}fix: {r.fix}")
        if failed or warned:
            print(f"\n{len(failed)} problem(s), {len(warned)} warning(s)")
        else:
            print("\neverything looks fine")
    return 1 if failed or (args.strict and warned) else 0


def add_ops_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `backup`, `restore` and `doctor` to the `hearth` parser's sub-commands."""
    p = sub.add_parser("backup", parents=[common],
                       help="write the configuration, the store and the keys to a tar.gz (safe while running)",
                       description="Write the configuration file, the store (copied with SQLite's online backup "
                       "API, so Hearth keeps answering), keys and other state from data_dir to FILE, a tar.gz "
                       "with a manifest of sha256 sums. Compiled lists are rebuilt, not saved.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--with-lists", action="store_true",
                   help="also save the downloaded list copies (restores offline, makes the file larger)")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", parents=[common], help="restore a backup (Hearth must be stopped)",
                       description="Restore FILE (from `hearth backup`) into data_dir and the configuration file. "
                       "Refuses while Hearth's engine or web UI runs on that data_dir. The files it replaces are "
                       "kept in data_dir/pre-restore-TIME/; an older store is migrated to this version.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--no-config", action="store_true", help="keep the current configuration file")
    p.add_argument("--dry-run", action="store_true", help="check the archive and show its manifest, change nothing")
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("doctor", parents=[common], help="check the installation and say what to fix",
                       description="Check ports (is something else on :53?), upstream reachability (one real "
                       "query each), list freshness, the clock, the engine and web processes, and the store. "
                       "Exit status 1 when a check fails.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--skip", action="append", metavar="CHECK",
                   help="skip a check: ports, upstreams, lists, time, engine, web, store (repeatable)")
    p.add_argument("--only", action="append", metavar="CHECK", help="run only this check (repeatable)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per network check (default 2)")
    p.add_argument("--strict", action="store_true", help="warnings count as problems too (exit 1)")
    p.set_defaults(func=cmd_doctor)
