"""The installed service, started the way its systemd unit starts it, answers on port 53 and again after a
restart (what a reboot does to it), keeping what the parent set up.

systemd is not running here, so the test plays its part: it runs the unit's ExecStart line with the unit's
capability set (`setpriv`: only CAP_NET_BIND_SERVICE, ambient; no new privileges), gives it a
NOTIFY_SOCKET and waits for READY=1 as Type=notify does. Port 53 is bound on 127.0.0.153 (loopback only);
the upstream is a fake on 127.0.0.1. What stays untested: User=hearth (the test interpreter lives in a
directory only root may enter) and the sandboxing options, which `systemd-analyze` checks instead.
"""
from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import need_root, need_tool
from tests.deploy.test_install import install, launcher
from tests.dnsclient import answers, ask

ADDRESS = "127.0.0.153"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_53_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ADDRESS, 53))
        except OSError:
            return False
    return True


class Service:
    """The unit's ExecStart under the unit's capabilities, with a notify socket."""

    def __init__(self, root: Path, tmp: Path):
        unit = (root / "etc/systemd/system/hearth.service").read_text()
        exec_start = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart="))
        argv = shlex.split(exec_start)
        self.argv = [str(root) + argv[0]] + [str(root) + a if a.startswith("/etc/hearth") else a for a in argv[1:]]
        self.tmp = tmp
        self.proc = None

    def start(self, timeout: float = 60.0) -> list[bytes]:
        path = str(self.tmp / "notify.sock")
        Path(path).unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(timeout)
            self.log = open(self.tmp / "service.log", "ab")
            self.proc = subprocess.Popen(
                ["setpriv", "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
                 "--bounding-set=-all,+net_bind_service", "--no-new-privs", *self.argv],
                stdout=self.log, stderr=subprocess.STDOUT, env={"NOTIFY_SOCKET": path, "PATH": "/usr/bin:/bin"})
            messages = [sock.recv(256)]
        return messages

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)   # systemctl stop
        code = self.proc.wait(20)
        self.log.close()
        return code

    def text(self) -> str:
        return (self.tmp / "service.log").read_text(errors="replace")


def test_installed_service_answers_on_53_and_again_after_a_restart(tmp_path, upstream):
    need_root("binds port 53 with CAP_NET_BIND_SERVICE")
    need_tool("setpriv", "util-linux")
    if not _port_53_free():
        pytest.skip(f"{ADDRESS}:53 is taken on this machine")
    root = tmp_path / "root"
    launcher(root)
    assert install(root).returncode == 0
    config_file = root / "etc/hearth/hearth.yaml"
    cfg = yaml.safe_load(config_file.read_text())
    # the installed defaults, pointed at this test's throw-away root, loopback and fake upstream
    cfg["data_dir"] = str(root / "var/lib/hearth")
    cfg["dns"].update(listen=[f"{ADDRESS}:53"], upstreams=[f"udp://127.0.0.1:{upstream.port}"])
    cfg["web"]["listen"] = f"127.0.0.1:{_free_port()}"
    config_file.write_text(yaml.safe_dump(cfg))

    service = Service(root, tmp_path)
    assert service.start() == [b"READY=1"], service.text()
    try:
        reply = ask("www.example.com", "A", 53, host=ADDRESS)
        assert reply is not None and answers(reply, "A") == ["192.0.2.77"], service.text()
        hearth = [str(root / "opt/hearth/bin/hearth"), "--config", str(config_file)]
        subprocess.run(hearth + ["profile", "add", "Kids", "--preset", "child", "--block", "www.example.com"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(hearth + ["device", "add", "tablet", "--ip", "127.0.0.1", "--profile", "Kids"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and answers(ask("www.example.com", "A", 53, host=ADDRESS), "A") \
                != ["0.0.0.0"]:
            time.sleep(0.1)
    finally:
        assert service.stop() == 0, service.text()

    # power cut or reboot: the service starts again and the child's profile is still there
    assert service.start() == [b"READY=1"], service.text()
    try:
        assert answers(ask("www.example.com", "A", 53, host=ADDRESS), "A") == ["0.0.0.0"]
        assert answers(ask("www.example.com", "A", 53, host=ADDRESS, source="127.0.0.2"), "A") == ["192.0.2.77"]
    finally:
        service.stop()
