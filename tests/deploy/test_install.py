"""deploy/install.sh and uninstall.sh in a throw-away root; the systemd unit checked by systemd-analyze.

The venv step (pip) is replaced by a launcher for the source under test (--no-pip), so these tests need
no network; the rest of the installer runs for real: user-less layout, config template, example file,
`hearth check-config`, the port check, the unit, the `hearth` link, upgrade and uninstall.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import REPO, run_cli

INSTALL = REPO / "deploy" / "install.sh"
UNINSTALL = REPO / "deploy" / "uninstall.sh"


def launcher(root: Path) -> Path:
    """What pip would put in /opt/hearth/bin/hearth: here, the source under test."""
    path = root / "opt/hearth/bin/hearth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m resolver.cli "$@"\n')
    path.chmod(0o755)
    return path


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(INSTALL), "--root", str(root), "--no-pip", "--timezone", "Asia/Ho_Chi_Minh",
                           *args], capture_output=True, text=True, timeout=120)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_upgrade_uninstall_in_a_throwaway_root(tmp_path):
    root = tmp_path / "root"
    launcher(root)
    res = install(root)
    assert res.returncode == 0, res.stdout + res.stderr

    config = root / "etc/hearth/hearth.yaml"
    assert mode(config) == 0o640 and mode(root / "etc/hearth") == 0o750 and mode(root / "var/lib/hearth") == 0o750
    cfg = yaml.safe_load(config.read_text())
    assert cfg["data_dir"] == "/var/lib/hearth" and cfg["timezone"] == "Asia/Ho_Chi_Minh"
    assert "0.0.0.0:53" in cfg["dns"]["listen"] and cfg["web"]["listen"] == "0.0.0.0:80"
    assert run_cli("check-config", str(config)).stdout.strip() == "ok"
    assert "data_dir:" in (root / "etc/hearth/hearth.example.yaml").read_text()    # the full generated example
    link = root / "usr/local/bin/hearth"
    assert link.is_symlink() and os.readlink(link) == "/opt/hearth/bin/hearth"

    unit = (root / "etc/systemd/system/hearth.service").read_text()
    for line in ("Type=notify", "ExecStart=/opt/hearth/bin/hearth run --config /etc/hearth/hearth.yaml",
                 "User=hearth", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ReadWritePaths=/var/lib/hearth", "Restart=on-failure",
                 "WantedBy=multi-user.target", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in unit.splitlines(), line
    assert "@" not in unit.replace("@system-service", "")   # every placeholder filled in

    # the one-time setup code for the web UI's wizard: printed at the end, kept for the service (0600)
    code_file = root / "var/lib/hearth/setup-code"
    code = code_file.read_text().strip()
    assert f"enter the setup code {code}" in res.stdout and mode(code_file) == 0o600
    assert not (root / "var/lib/hearth/hearth.db").exists()      # the installer makes no store

    # the admin edits the config; a second run (an upgrade) keeps it and refreshes the unit
    edited = config.read_text().replace('"0.0.0.0:80"', '"0.0.0.0:8080"') + "# my change\n"
    config.write_text(edited)
    (root / "etc/systemd/system/hearth.service").write_text("stale\n")
    (root / "var/lib/hearth/hearth.db").write_text("data")
    res = install(root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "keeping your configuration" in res.stdout
    assert f"enter the setup code {code}" in res.stdout          # the same code until setup is done
    assert config.read_text() == edited
    assert (root / "etc/systemd/system/hearth.service").read_text() == unit

    # uninstall keeps the configuration and the data ...
    res = subprocess.run(["sh", str(UNINSTALL), "--root", str(root)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert not (root / "etc/systemd/system/hearth.service").exists() and not (root / "opt/hearth").exists()
    assert not link.is_symlink()
    assert config.read_text() == edited and (root / "var/lib/hearth/hearth.db").read_text() == "data"
    # ... and a new install picks them up
    launcher(root)
    assert install(root).returncode == 0 and config.read_text() == edited
    # --purge deletes them
    res = subprocess.run(["sh", str(UNINSTALL), "--root", str(root), "--purge"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0
    assert not (root / "etc/hearth").exists() and not (root / "var/lib/hearth").exists()


def test_systemd_analyze_verifies_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    root = tmp_path / "root"
    launcher(root)
    assert install(root).returncode == 0
    # verify checks that ExecStart exists: point the unit's paths into the throw-away root
    text = (root / "etc/systemd/system/hearth.service").read_text()
    for path in ("/opt/hearth", "/etc/hearth", "/var/lib/hearth"):
        text = text.replace(path, f"{root}{path}")
    unit = tmp_path / "hearth.service"
    unit.write_text(text)
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    sec = subprocess.run([analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True,
                         timeout=60)
    if "--offline" in sec.stderr or "nrecognized option" in sec.stderr:
        return  # systemd older than 250: no offline security report
    exposure = re.search(r"Overall exposure level for hearth.service: ([0-9.]+)", sec.stdout)
    assert exposure and float(exposure.group(1)) < 4.0, sec.stdout[-1500:]   # "OK" or better


def test_installer_explains_a_taken_dns_port(tmp_path):
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        root = tmp_path / "root"
        launcher(root)
        res = install(root, "--dns-listen", f'["127.0.0.1:{port}"]', "--check-ports")
    finally:
        holder.close()
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"127.0.0.1:{port}: in use by" in res.stderr
    assert "not started" in res.stderr and "hearth doctor" in res.stderr
    assert (root / "etc/systemd/system/hearth.service").exists()   # installed all the same


def test_installer_refuses_without_root_or_a_throwaway_root(tmp_path):
    if os.geteuid() == 0:
        res = subprocess.run(["sh", str(INSTALL), "--bogus"], capture_output=True, text=True, timeout=30)
        assert res.returncode == 2 and "unknown option" in res.stderr
        return
    res = subprocess.run(["sh", str(INSTALL), "--no-pip"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "run as root" in res.stderr
