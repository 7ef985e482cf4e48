"""The Docker files, checked without building the image (no daemon or registry needed)."""
from __future__ import annotations

import json
import re

import yaml

from tests.deploy.conftest import REPO, run_cli, write_config


def instructions() -> dict:
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.setdefault(word.upper(), []).append(rest.strip())
    return out


def test_dockerfile_is_slim_non_root_with_a_healthcheck(tmp_path):
    ins = instructions()
    assert ins["FROM"][0].startswith("python:3") and "slim" in ins["FROM"][0]
    assert ins["USER"][-1] not in ("root", "0")
    assert "/var/lib/hearth" in ins["VOLUME"][0]
    assert ins["ENTRYPOINT"] == ['["hearth"]'] and ins["CMD"] == ['["run"]']
    health = ins["HEALTHCHECK"][0]
    argv = json.loads(health[health.index("CMD") + 3:].strip())
    assert argv[:2] == ["hearth", "doctor"]
    # the health check's arguments are accepted, and it fails (exit 1, not a usage error) with nothing running
    cfg = write_config(tmp_path / "h.yaml", {"data_dir": str(tmp_path / "d"), "web": {"listen": "127.0.0.1:9"},
                                             "dns": {"upstreams": ["udp://127.0.0.1:9"]}})
    assert run_cli(*argv[1:], config=cfg).returncode == 1
    # the image's own configuration is valid
    assert run_cli("check-config", str(REPO / "deploy/docker/hearth.yaml")).stdout.strip() == "ok"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored and "setup.py" not in ignored and "resolver" not in ignored


def test_compose_uses_host_networking_and_a_volume():
    compose = yaml.safe_load((REPO / "deploy/docker-compose.yml").read_text())
    svc = compose["services"]["hearth"]
    assert svc["network_mode"] == "host"
    assert (REPO / "deploy" / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == REPO / "Dockerfile"
    assert any(v.endswith(":/var/lib/hearth") for v in svc["volumes"]) and "hearth-data" in compose["volumes"]
