"""The one-time setup code (issue 13, item 4) and the wizard's upstream step when the configuration
file sets dns.upstreams (item 13): Flask test client, the `hearth admin setup-code` command, and a real
`hearth web` over HTTP on loopback."""
from __future__ import annotations

import http.client
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import yaml

from resolver.service.config import Config
from resolver.engine.dnsconfig import DnsConfig
from resolver.policy.blocking import BlockingConfig
from tests.webui.conftest import PASSWORD, Browser, csrf_of, run_wizard, setup_code_of
from webui import core, create_app
from webui.setupcode import code_path, normalise, read_code

REPO = Path(__file__).resolve().parents[2]


def test_setup_without_the_code_is_refused(app):
    b = Browser(app.test_client())
    page = b.get("/setup").get_data(as_text=True)
    assert 'name="setup_code"' in page and "hearth admin setup-code" in page
    data_dir = app.config["HEARTH"].data_dir
    code = read_code(data_dir)
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", code)
    assert stat.S_IMODE(os.stat(code_path(data_dir)).st_mode) == 0o600
    for wrong in ("", "AAAA-BBBB-CCCC", code[:-1]):
        resp = run_wizard(b, setup_code=wrong)
        assert resp.status_code == 403 and "not the setup code" in resp.get_data(as_text=True)
    with app.app_context():
        assert core.store().count_users() == 0
    assert b.get("/devices").location.endswith("/setup")
    # typed the way people type it: lower case, spaces instead of dashes
    resp = run_wizard(b, setup_code=" " + code.lower().replace("-", " "))
    assert resp.status_code == 302 and resp.location.endswith("/setup/done")
    assert read_code(data_dir) is None                     # one time: gone once used
    assert normalise("ab-c d") == "ABCD"


def test_setup_code_in_vietnamese(app):
    b = Browser(app.test_client())
    b.get("/lang/vi?next=/setup")
    page = b.get("/setup").get_data(as_text=True)
    assert "Mã cài đặt" in page
    resp = run_wizard(b, setup_code="nope")
    assert resp.status_code == 403 and "Đây không phải là mã cài đặt" in resp.get_data(as_text=True)


def hearth(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resolver.cli", *args, "-c", str(config)], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=str(REPO))


def test_hearth_admin_setup_code_prints_it_until_setup_is_done(tmp_path):
    cfg = tmp_path / "hearth.yaml"
    data = tmp_path / "data"
    cfg.write_text(yaml.safe_dump({"data_dir": str(data)}))
    first = hearth(cfg, "admin", "setup-code")
    assert first.returncode == 0, first.stderr
    code = first.stdout.strip()
    assert stat.S_IMODE((data / "setup-code").stat().st_mode) == 0o600
    assert not (data / "hearth.db").exists()                # the command does not make the store
    assert hearth(cfg, "admin", "setup-code").stdout.strip() == code

    # the web UI takes the same code
    app = create_app(Config(data_dir=str(data), blocking=BlockingConfig(starter_lists=False)))
    b = Browser(app.test_client())
    assert setup_code_of(b) == code
    assert run_wizard(b, setup_code=code).status_code == 302
    with app.app_context():
        core.store().close()
    done = hearth(cfg, "admin", "setup-code")
    assert done.returncode == 1 and "already set up" in done.stderr and not done.stdout

    # headless setup retires a code too
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data2")}))
    assert hearth(other, "admin", "setup-code").returncode == 0
    assert hearth(other, "admin", "create", "mum", "--password-stdin", stdin=PASSWORD).returncode == 0
    assert not (tmp_path / "data2" / "setup-code").exists()
    assert hearth(other, "admin", "setup-code").returncode == 1


# -- item 13: the configuration file's upstreams win, and the wizard says so -------------------------------

def test_wizard_shows_the_config_files_upstreams_instead_of_a_choice(tmp_path):
    fixed = ["udp://192.0.2.53", "tls://192.0.2.54#dns.example"]
    app = create_app(Config(data_dir=str(tmp_path / "data"), blocking=BlockingConfig(starter_lists=False),
                            dns=DnsConfig(upstreams=fixed)))
    b = Browser(app.test_client())
    page = b.get("/setup").get_data(as_text=True)
    assert 'id="upstreams-from-file"' in page and 'name="upstream"' not in page
    assert all(u in page for u in fixed) and "dns.upstreams" in page
    resp = run_wizard(b, upstream="")                      # nothing to choose: nothing sent
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with app.app_context():
        store = core.store()
        assert store.get_setting("upstreams") is None and store.get_setting("upstream_choice") is None
        assert [e for e in store.list_audit() if e.action == "setup"][0].after["upstream"] == "config file"
        store.close()


def test_wizard_offers_the_choice_when_the_file_leaves_the_default(app):
    page = Browser(app.test_client()).get("/setup").get_data(as_text=True)
    assert 'name="upstream"' in page and 'id="upstreams-from-file"' not in page


# -- real HTTP against `hearth web` ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hearth_web_logs_the_code_and_refuses_setup_without_it(tmp_path):
    port = _free_port()
    cfg = tmp_path / "hearth.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "web": {"listen": f"127.0.0.1:{port}"},
                                   "blocking": {"starter_lists": False}}))
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log:
        web = subprocess.Popen([sys.executable, "-m", "resolver.cli", "web", "-c", str(cfg)], stdout=log,
                               stderr=subprocess.STDOUT, cwd=str(REPO))
    try:
        deadline = time.monotonic() + 30
        while "setup code" not in log_path.read_text():
            assert web.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        code = hearth(cfg, "admin", "setup-code").stdout.strip()
        assert f"enter the setup code {code}" in log_path.read_text()

        def request(method: str, path: str, body: str = "", headers: dict | None = None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp, resp.read().decode()

        # raw bytes the Flask test client would not send: the open redirect and the 500 of the issue
        for raw in ("/lang/en?next=/%09/evil.example/", "/lang/en?next=/%0a/evil.example/",
                    "/lang/vi?next=%2F%2Fevil.example"):
            resp, _ = request("GET", raw)
            assert resp.status == 302 and resp.getheader("Location") == "/", raw

        resp, page = request("GET", "/setup")
        cookie = resp.getheader("Set-Cookie").split(";")[0]
        form = {"csrf_token": csrf_of(page), "username": "admin", "password": PASSWORD, "password2": PASSWORD,
                "language": "en", "timezone": "UTC", "upstream": "quad9", "profile_name": "Kids",
                "preset": "child", "device_name": "", "device_id": ""}
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded",
                   "Origin": f"http://127.0.0.1:{port}"}
        resp, body = request("POST", "/setup", urllib.parse.urlencode(form), headers)
        assert resp.status == 403 and "not the setup code" in body
        resp, body = request("POST", "/setup", urllib.parse.urlencode(dict(form, setup_code=code)),
                             dict(headers, Origin="http://evil.example"))
        assert resp.status == 403                        # right code, but from another site
        resp, body = request("POST", "/setup", urllib.parse.urlencode(dict(form, setup_code=code)), headers)
        assert resp.status == 302 and resp.getheader("Location").endswith("/setup/done"), body
        assert hearth(cfg, "admin", "setup-code").returncode == 1
    finally:
        web.terminate()
        web.wait(10)
