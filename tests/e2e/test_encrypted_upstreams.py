"""DoT and DoH upstreams through the running engine, verified against a test CA."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS, make_test_certs, server_tls_context

RECORDS = {"www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"]}


@pytest.mark.parametrize("kind", ["tls", "https"])
def test_encrypted_upstream(tmp_path, start_engine, kind):
    ca, cert, key = make_test_certs(tmp_path)
    ctx = server_tls_context(str(cert), str(key), alpn=["http/1.1"] if kind == "https" else None)
    with FakeDNS(RECORDS, tls_context=ctx, doh=kind == "https") as upstream:
        url = (f"tls://127.0.0.1:{upstream.port}#dns.test" if kind == "tls"
               else f"https://dns.test:{upstream.port}/dns-query#127.0.0.1")
        eng = start_engine({"dns": {"upstreams": [url], "upstream_ca_file": str(ca)}})
        for i in range(5):
            assert answers(ask("www.example.com", "A", eng.port, do=bool(i % 2))) == ["192.0.2.10"]
        assert upstream.connections[{"tls": "tls", "https": "doh"}[kind]] == 1  # connection reused


def test_unverifiable_tls_upstream_fails_closed(tmp_path, start_engine):
    _ca, cert, key = make_test_certs(tmp_path)
    with FakeDNS(RECORDS, tls_context=server_tls_context(str(cert), str(key))) as upstream:
        # no upstream_ca_file: the system CAs do not know the test CA, so no answer may be accepted
        eng = start_engine({"dns": {"upstreams": [f"tls://127.0.0.1:{upstream.port}#dns.test"],
                                    "upstream_timeout": 0.5, "upstream_attempts": 1}})
        reply = ask("www.example.com", "A", eng.port)
        assert reply.header.rcode == 2 and not reply.rr


@pytest.mark.skipif(not shutil.which("dig") or not shutil.which("kdig"), reason="dig/kdig not installed")
def test_dig_and_kdig_interoperate(start_engine):
    with FakeDNS(RECORDS) as upstream:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]}})
        for cmd in (["dig", "+short"], ["dig", "+short", "+tcp"], ["kdig", "+short"], ["kdig", "+short", "+tcp"]):
            out = subprocess.run(cmd + ["@127.0.0.1", "-p", str(eng.port), "www.example.com", "A"],
                                 capture_output=True, text=True, timeout=10)
            assert out.stdout.strip() == "192.0.2.10", (cmd, out.stdout, out.stderr)
        keep = subprocess.run(["dig", "+tcp", "+keepopen", "@127.0.0.1", "-p", str(eng.port),
                               "www.example.com", "A", "www.example.com", "A", "+short"],
                              capture_output=True, text=True, timeout=10)
        assert keep.stdout.split() == ["192.0.2.10", "192.0.2.10"]
