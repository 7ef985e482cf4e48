"""The `hearth` command."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Optional

from resolver import __version__
from resolver.cli.ops import add_ops_commands
from resolver.cli.store import add_store_commands
from resolver.cli.policy import add_policy_commands
from resolver.cli.provider import add_provider_commands
from resolver.cli.web import add_web_commands
from resolver.service.config import ConfigError, config_path, load_config, load_for_command

log = logging.getLogger("hearth")


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))


def _load(args: argparse.Namespace):
    """The config for a command; prints the problems and exits 2 when it is broken."""
    return load_for_command(args.config, args.command)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.file or config_path(args.config)
    if path is None:
        print("hearth check-config: give a FILE (or --config / $HEARTH_CONFIG)", file=sys.stderr)
        return 2
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc)
        return 1
    if args.file_only:
        print("ok")
        return 0
    # what would stop Hearth from starting although the file is right: ports in use, the data directory
    from resolver.engine.startup import preflight

    findings = preflight(config, dns=True, web=config.web.enabled, running_ok=True)
    for f in findings:
        if not f.fatal:
            print(f"{path}: {f.key}: warning: {f.message}", file=sys.stderr)
    fatal = [f for f in findings if f.fatal]
    for f in fatal:
        print(f"{path}: {f.key}: {f.message}")
    if fatal:
        return 1
    print("ok")
    return 0


def _preflight_or_exit(config, *, dns: bool, web: bool) -> Optional[int]:
    """Check ports and the data directory before starting; one line and EXIT_STARTUP when they fail."""
    from resolver.engine.startup import EXIT_STARTUP, preflight

    for f in preflight(config, dns=dns, web=web):
        if f.fatal:
            print(f"hearth: {f.message}", file=sys.stderr, flush=True)
            return EXIT_STARTUP
        log.warning("%s: %s", f.key, f.message)
    return None


def cmd_dns(args: argparse.Namespace) -> int:
    config, path = _load(args)
    _setup_logging(config.log_level)
    failed = _preflight_or_exit(config, dns=True, web=False)
    if failed is not None:
        return failed
    from resolver.engine.dnsconfig import worker_count

    count = worker_count(config.dns.workers)
    if count > 1:   # a parent of `count` engine processes on the same sockets
        from resolver.service.workers import run_workers

        return run_workers(config, path, count)
    from resolver.service.process import run_engine

    return run_engine(config, path)


def cmd_web(args: argparse.Namespace) -> int:
    config, path = _load(args)
    _setup_logging(config.log_level)
    failed = _preflight_or_exit(config, dns=False, web=True)
    if failed is not None:
        return failed
    if path:  # the UI's list updates re-read this file (blocklists.runner), like the engine's
        os.environ["HEARTH_CONFIG"] = os.path.abspath(path)
    from webui import serve

    log.info("web UI on http://%s/", config.web.listen)
    return serve(config, path)


def cmd_run(args: argparse.Namespace) -> int:
    config, path = _load(args)  # a broken config stops here, with every problem named
    failed = _preflight_or_exit(config, dns=True, web=config.web.enabled)
    if failed is not None:
        return failed
    argv = [sys.executable, "-m", "resolver.ops.supervisor", "--log-level", config.log_level]
    if path:
        argv += ["--config", os.path.abspath(path)]
    if not config.web.enabled:
        argv.append("--no-web")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # the supervisor needs none of what this process imported
    return 0  # not reached


def cmd_stats(args: argparse.Namespace) -> int:
    config, _path = _load(args)
    from resolver.service.control import call

    try:
        reply = call(config.control_socket, "stats")
    except OSError as exc:
        print(f"hearth stats: the DNS engine is not running (no answer on {config.control_socket}: {exc})",
              file=sys.stderr)
        return 1
    stats = reply["stats"]
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    for key, value in stats.items():
        if key == "upstreams":
            for u in value:
                print(f"upstream {u['url']}: {'up' if u.get('healthy') else 'DOWN'}, {u.get('queries', 0)} queries, "
                      f"{u.get('errors', 0)} errors, ewma {u.get('ewma_ms') or 0:.1f} ms, "
                      f"{u.get('health_changes', 0)} health changes"
                      + (f", last error: {u['last_error']}" if u.get("last_error") else ""))
        elif key == "workers" and isinstance(value, list):
            for w in value:
                print(f"worker {w.get('worker')} (pid {w.get('pid')}): {'up' if w.get('up') else 'DOWN'}, "
                      f"{w.get('queries', 0)} queries, {w.get('restarts', 0)} restarts")
        elif key == "latency_histogram":
            print("latency (slow path): " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            print(f"{key}: {value}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    config, _path = _load(args)
    from resolver.service.control import call

    try:
        reply = call(config.control_socket, "reload")
    except OSError as exc:
        print(f"hearth reload: the DNS engine is not running ({exc})", file=sys.stderr)
        return 1
    print(reply.get("message", ""))
    return 0 if reply.get("ok") else 1


def cmd_config(args: argparse.Namespace) -> int:
    from resolver.service import config as cfg

    text = cfg.reference() if args.what == "reference" else cfg.example()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_lists_update(args: argparse.Namespace) -> int:
    config, _path = _load(args)
    _setup_logging("warning")
    from blocklists.manager import ListManager, UpdateBusy

    manager = ListManager(config, progress=lambda msg: print(msg, flush=True))
    try:
        report = manager.update(fetch=not args.offline, only=set(args.list) if args.list else None,
                                trigger=args.trigger)
    except UpdateBusy as exc:
        print(f"hearth lists update: {exc}", file=sys.stderr)
        return 1
    failed = [k for k, v in report["lists"].items() if v.get("error")]
    if not args.no_notify:
        from resolver.service.control import call

        try:
            call(config.control_socket, "lists-reload", timeout=10)
            print("engine: new lists in force")
        except OSError:
            print("engine: not running (the new lists apply when it starts)")
    if report.get("feed_error"):
        print(f"feed FAILED: {report['feed_error']} (the lists it gave before stay in force)")
    if failed:
        print(f"{len(failed)} list(s) failed and kept their previous copy: {', '.join(failed)}")
    return 1 if report.get("feed_error") or failed else 0


def _when(ts: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "never"


def cmd_lists_status(args: argparse.Namespace) -> int:
    config, _path = _load(args)
    from blocklists.manager import ListManager

    manager = ListManager(config)
    rows = manager.status()
    state = manager.update_state()
    problems = state.problems()
    if args.json:
        print(json.dumps({"lists": [r.__dict__ for r in rows], "feed": state.feed.__dict__ if state.feed else None,
                          "update": state.run.__dict__, "problems": problems}, indent=2))
        return 0
    if state.feed is not None:
        f = state.feed
        print(f"feed {f.url}" + (f"  ({f.title})" if f.title else ""))
        print(f"  installed version {f.version if f.version is not None else 'none'}, {f.lists} lists"
              f"{f' ({f.mandatory} mandatory)' if f.mandatory else ''}; last check {_when(f.last_check)}, "
              f"last success {_when(f.last_success)}")
        print(f"  {'FAILING: ' + f.error if f.error else 'ok'}")
        print()
    run = state.run
    if run.running:
        print(f"an update is running (pid {run.pid}, started {_when(run.started)}, by {run.trigger or 'cli'})")
    elif run.error:
        print(f"last update ({_when(run.started)}, by {run.trigger or 'cli'}) FAILED: {run.error}")
    for line in run.removed:
        print(f"removed at the last update: {line}")
    if not rows:
        print("no lists compiled yet: run `hearth lists update`")
        return 0
    print(f"{'list':<28} {'category':<10} {'origin':<8} {'entries':>9}  {'last success':<16}  "
          f"{'last attempt':<16}  error")
    for r in rows:
        flag = "*" if r.mandatory else ""
        print(f"{r.id + flag:<28} {r.category:<10} {r.origin:<8} {r.entries:>9}  {_when(r.last_success):<16}  "
              f"{_when(r.last_attempt):<16}  {r.error or ''}")
    if any(r.mandatory for r in rows):
        print("* mandatory: enforced in every profile")
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from blocklists import feed, verify

    try:
        if args.feed_command == "keygen":
            private, public = feed.keygen(args.out)
            print(f"private key: {private} (keep it secret)\npublic key:  {public}\n"
                  f"appliances configure: feed.public_key: {open(public).read().strip()}")
        elif args.feed_command == "build":
            manifest = feed.build_feed(args.src, args.key, args.out, version=args.version)
            print(f"feed version {manifest['version']}: {len(manifest['lists'])} lists written to {args.out}")
        else:
            manifest = verify.verify_feed(args.source, feed.load_public_key(args.public_key))
            print(f"ok: feed version {manifest['version']}, {len(manifest['lists'])} lists, signature and "
                  "checksums valid")
    except feed.FeedError as exc:
        print(f"hearth feed {args.feed_command}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_services_list(args: argparse.Namespace) -> int:
    from blocklists.services import load_services, services_table

    if args.json:
        print(json.dumps([{"id": s.id, "name": s.name, "group": s.group,
                           "domains": [{"name": n, "subdomains": sub} for n, sub in s.domains]}
                          for s in load_services().values()], indent=1, ensure_ascii=False))
    else:
        print(services_table())
    return 0


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"hearth {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE",
                        help="configuration file (default: $HEARTH_CONFIG, else embedded defaults)")
    parser = argparse.ArgumentParser(prog="hearth", description="Hearth parental-filter DNS appliance",
                                     parents=[common])
    # Sub-commands take -c too; SUPPRESS keeps their default from hiding a -c given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="configuration file (default: $HEARTH_CONFIG, else embedded defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=func)
        return p

    add("run", cmd_run, "run the DNS engine and the web UI, supervised (restarted if they crash)")
    add("dns", cmd_dns, "run the DNS engine alone")
    add("web", cmd_web, "run the web UI alone")
    p = add("check-config", cmd_check_config, "check a configuration file, and that its listen addresses are free "
            "and its data_dir usable: prints ok, or FILE:LINE: key: problem")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.add_argument("--file-only", action="store_true",
                   help="check the file alone (no port or data directory checks), e.g. on another machine")
    p = add("stats", cmd_stats, "show the running engine's counters")
    p.add_argument("--json", action="store_true", help="print JSON")
    add("reload", cmd_reload, "make the running engine re-read its configuration (like SIGHUP)")
    p = add("config", cmd_config, "print the configuration reference or a commented example file")
    p.add_argument("what", choices=("reference", "example"))
    p.add_argument("--write", metavar="FILE", help="write to FILE instead of standard output")
    lists = sub.add_parser("lists", help="blocklist updates and their status", parents=[common])
    lists_sub = lists.add_subparsers(dest="lists_command", metavar="COMMAND")
    lists_sub.required = True
    p = lists_sub.add_parser("update", help="download, check and compile every list now", parents=[common])
    p.add_argument("--list", action="append", metavar="ID", help="only download this list (repeatable)")
    p.add_argument("--offline", action="store_true", help="compile the copies at hand, download nothing")
    p.add_argument("--no-notify", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--trigger", choices=("cli", "ui", "scheduler", "startup"), default="cli", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_lists_update)
    p = lists_sub.add_parser("status", help="the feed (version, last check, last error), the last update, and per "
                             "list: entries, last success, last attempt, error",
                             parents=[common])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lists_status)

    fp = sub.add_parser("feed", help="publish a signed provider feed (for list administrators)")
    feed_sub = fp.add_subparsers(dest="feed_command", metavar="COMMAND")
    feed_sub.required = True
    p = feed_sub.add_parser("keygen", help="make an Ed25519 key pair: DIR/feed.key and DIR/feed.pub")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_feed)
    p = feed_sub.add_parser("build", help="sign a feed from SRC_DIR/feed.yaml and its lists into OUT_DIR")
    p.add_argument("src", metavar="SRC_DIR")
    p.add_argument("--key", required=True, metavar="PRIVATE_KEY")
    p.add_argument("--out", required=True, metavar="OUT_DIR")
    p.add_argument("--version", type=int, help="feed version (default: the previous one + 1)")
    p.set_defaults(func=cmd_feed)
    p = feed_sub.add_parser("verify", help="check a feed's signature and every list's checksum")
    p.add_argument("source", metavar="URL_OR_DIR")
    p.add_argument("--public-key", required=True, metavar="KEY", help="base64 key, or a path to feed.pub")
    p.set_defaults(func=cmd_feed)
    sp = sub.add_parser("services", help="the catalogue of blockable services (TikTok, YouTube, Roblox, …)")
    services_sub = sp.add_subparsers(dest="services_command", metavar="COMMAND")
    services_sub.required = True
    p = services_sub.add_parser("list", help="service ids, names and groups")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_services_list)
    add_policy_commands(sub, common)
    add_web_commands(sub, common)
    add_ops_commands(sub, common)
    add_store_commands(sub, common)
    add_provider_commands(sub, common)
    add("version", cmd_version, "print the version")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os._exit(0)

