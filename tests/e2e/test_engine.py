"""`hearth dns` end to end: real sockets on loopback, a fake upstream on another port."""
from __future__ import annotations

import json
import random
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
from dnslib import QTYPE, DNSRecord

from resolver.store.sqlite import open_store
from tests.dnsclient import answers, ask, ede, exchange, make_query
from tests.dnsfake import FakeDNS

RECORDS = {
    "www.example.com.": ["www.example.com. 300 IN A 192.0.2.10", "www.example.com. 300 IN AAAA 2001:db8::10"],
    "example.com.": ["example.com. 300 IN MX 10 mail.example.com.", 'example.com. 300 IN TXT "v=spf1 -all"'],
    "alias.example.com.": ["alias.example.com. 300 IN CNAME www.example.com."],
    "short.example.com.": ["short.example.com. 2 IN A 192.0.2.20"],
    "big.example.com.": [f'big.example.com. 300 IN TXT "{"x" * 200}"' for _ in range(5)],
}


@pytest.fixture
def upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


def _cfg(upstream, **dns):
    return {"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"], "upstream_timeout": 0.4,
                    "upstream_attempts": 2, **dns}}


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_answers_match_the_upstream(upstream, start_engine, tcp):
    eng = start_engine(_cfg(upstream))
    for name, qtype in [("www.example.com", "A"), ("www.example.com", "AAAA"), ("example.com", "MX"),
                        ("example.com", "TXT"), ("alias.example.com", "A")]:
        direct = ask(name, qtype, upstream.port)
        via = ask(name, qtype, eng.port, tcp=tcp)
        assert via is not None, (name, qtype)
        assert via.header.rcode == 0 and via.header.qr and via.header.ra
        assert sorted(answers(via)) == sorted(answers(direct)), (name, qtype)
    nx = ask("nope.example.com", "A", eng.port, tcp=tcp)
    assert nx.header.rcode == 3 and any(r.rtype == QTYPE.SOA for r in nx.auth)


def test_ipv6_listener(upstream, start_engine):
    eng = start_engine(_cfg(upstream, listen=["127.0.0.1:0", "[::1]:0"]))
    v6 = [p for h, p in eng.ports if h == "::1"][0]
    assert answers(ask("www.example.com", "A", v6, host="::1")) == ["192.0.2.10"]
    assert answers(ask("www.example.com", "A", v6, host="::1", tcp=True)) == ["192.0.2.10"]


def test_repeat_is_a_cache_hit_with_lower_ttl_and_echoes_case(upstream, start_engine):
    eng = start_engine(_cfg(upstream))
    first = ask("www.example.com", "A", eng.port)
    time.sleep(1.2)
    second = ask("WwW.ExAmPlE.cOm", "A", eng.port)
    assert str(second.q.qname) == "WwW.ExAmPlE.cOm."
    assert answers(second) == answers(first)
    assert second.rr[0].ttl < first.rr[0].ttl
    assert len([q for q in upstream.queries if q[1] == "www.example.com." and q[2] == "A"]) == 1


def test_upstream_down_serves_stale_and_servfails_the_rest(upstream, start_engine):
    eng = start_engine(_cfg(upstream, upstream_timeout=0.3, upstream_attempts=2))
    assert answers(ask("short.example.com", "A", eng.port)) == ["192.0.2.20"]
    upstream.mode = "drop"
    time.sleep(2.2)  # the 2 s TTL has run out
    t0 = time.monotonic()
    stale = ask("short.example.com", "A", eng.port, timeout=5)
    assert answers(stale) == ["192.0.2.20"] and stale.rr[0].ttl == 30
    assert ede(stale)[0] == 3  # Stale Answer
    failed = ask("never-cached.example.com", "A", eng.port, timeout=5)
    elapsed = time.monotonic() - t0
    assert failed.header.rcode == 2 and ede(failed)[0] == 22
    assert elapsed < 3.5  # within the configured time-outs (2 x 0.3 s each), not a client time-out


def test_clients_outside_allow_list_are_refused(upstream, start_engine):
    eng = start_engine(_cfg(upstream, allow_clients=["127.0.0.1/32"]))
    assert ask("www.example.com", "A", eng.port, source="127.0.0.1").header.rcode == 0
    for tcp in (False, True):
        refused = ask("www.example.com", "A", eng.port, source="127.0.0.2", tcp=tcp)
        assert refused.header.rcode == 5 and not refused.rr
    assert len([q for q in upstream.queries if q[1] == "www.example.com."]) == 1


def test_rate_limit_drops_a_flooding_client(upstream, start_engine):
    eng = start_engine(_cfg(upstream, rate_limit={"qps": 5, "burst": 10, "exempt": []}))
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.3", 0))
        s.settimeout(0.3)
        for _ in range(60):
            s.sendto(make_query("www.example.com").pack(), ("127.0.0.1", eng.port))
        try:
            while True:
                s.recvfrom(4096)
                answered += 1
        except socket.timeout:
            pass
    assert 8 <= answered <= 14
    assert ask("www.example.com", "A", eng.port, source="127.0.0.4").header.rcode == 0  # others unaffected


def test_special_queries(upstream, start_engine):
    eng = start_engine(_cfg(upstream))
    any_reply = ask("example.com", "ANY", eng.port)
    assert [QTYPE.get(r.rtype) for r in any_reply.rr] == ["HINFO"]  # RFC 8482
    for name, qtype, qclass in [("version.bind", "TXT", "CH"), ("id.server", "TXT", "CH")]:
        reply = ask(name, qtype, eng.port, qclass=qclass)
        assert reply.header.rcode == 5 and not reply.rr
    assert ask("example.com", "AXFR", eng.port, tcp=True).header.rcode == 5
    assert not [q for q in upstream.queries if q[2] in ("ANY", "AXFR")]


def test_large_answer_truncates_over_udp_and_is_whole_over_tcp(upstream, start_engine):
    eng = start_engine(_cfg(upstream))
    small = ask("big.example.com", "TXT", eng.port, edns=None)
    assert small.header.tc and not small.rr
    full = ask("big.example.com", "TXT", eng.port, tcp=True, edns=None)
    assert not full.header.tc and len(full.rr) == 5
    edns = ask("big.example.com", "TXT", eng.port, edns=1232)  # fits in 1232
    assert not edns.header.tc and len(edns.rr) == 5
    small_again = ask("big.example.com", "TXT", eng.port, edns=None)  # now a cache hit: still truncated
    assert small_again.header.tc


def test_edns_version_other_than_zero_gets_badvers(upstream, start_engine):
    from dnslib import EDNS0
    eng = start_engine(_cfg(upstream))
    q = DNSRecord.question("www.example.com", "A")
    q.add_ar(EDNS0(udp_len=1232, version=1))
    reply = DNSRecord.parse(exchange(q.pack(), eng.port))
    opt = [r for r in reply.ar if r.rtype == QTYPE.OPT][0]
    assert (opt.ttl >> 24) == 1  # extended rcode 16 = BADVERS


def test_tcp_pipelining_answers_every_query_on_one_connection(upstream, start_engine):
    eng = start_engine(_cfg(upstream))
    queries = [make_query(n) for n in ["www.example.com", "alias.example.com", "nx1.example.com"] * 10]
    with socket.create_connection(("127.0.0.1", eng.port), timeout=5) as s:
        s.sendall(b"".join(struct.pack(">H", len(p)) + p for p in (bytes(q.pack()) for q in queries)))
        ids = set()
        for _ in queries:
            size = struct.unpack(">H", _recv(s, 2))[0]
            ids.add(DNSRecord.parse(_recv(s, size)).header.id)
    assert ids == {q.header.id for q in queries}


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def test_garbage_and_mutations_leave_the_server_answering(upstream, start_engine, test_data):
    eng = start_engine(_cfg(upstream))
    rng = random.Random(1234)
    seeds = [bytes.fromhex(json.loads(line)["hex"]) for name in ("c-ares-fuzzinput.jsonl", "dnslib-test-packets.jsonl")
             for line in (test_data / "dns-wire" / name).read_text().splitlines()]
    seeds.append(bytes(make_query("www.example.com").pack()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for i in range(10000):
            data = bytearray(rng.choice(seeds)[:1400])
            kind = rng.random()
            if kind < 0.1:
                data = bytearray(rng.randbytes(rng.randint(0, 600)))
            else:
                for _ in range(rng.randint(1, 6)):
                    if data:
                        data[rng.randrange(len(data))] = rng.randrange(256)
                if kind > 0.8:
                    data = data[:rng.randrange(len(data) + 1)]
            try:
                s.sendto(bytes(data), ("127.0.0.1", eng.port))
            except BlockingIOError:
                time.sleep(0.01)
            if i % 500 == 0:
                time.sleep(0.02)  # let the engine breathe; we test robustness, not flood tolerance
    for seed in rng.sample(seeds, 30):  # the same garbage over TCP, one connection each
        with socket.create_connection(("127.0.0.1", eng.port), timeout=2) as c:
            c.sendall(struct.pack(">H", len(seed)) + seed)
            c.settimeout(0.2)  # garbage that gets no answer leaves the connection open: don't wait it out
            try:
                c.recv(65535)
            except OSError:
                pass
    time.sleep(0.5)
    assert eng.proc.poll() is None
    assert answers(ask("www.example.com", "A", eng.port)) == ["192.0.2.10"]
    assert answers(ask("www.example.com", "A", eng.port, tcp=True)) == ["192.0.2.10"]
    log = eng.log()
    assert "Traceback" not in log, log[-3000:]
    from resolver.service.control import call
    stats = call(str(eng.data_dir / "hearth.sock"), "stats")["stats"]
    assert stats["pending"] == 0  # no task left behind
    assert stats["formerr"] > 1000


def test_formerr_for_readable_header(upstream, start_engine):
    eng = start_engine(_cfg(upstream))
    garbage = b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc"  # label runs past the end
    reply = exchange(garbage, eng.port)
    assert reply[:2] == b"\xbe\xef" and reply[3] & 0x0F == 1  # FORMERR
    assert exchange(b"\x01\x02\x03", eng.port, timeout=0.5) is None  # no header: dropped


def test_local_records_and_sighup_reload(upstream, start_engine):
    cfg = _cfg(upstream)
    cfg["local_records"] = [{"name": "hearth.lan", "type": "A", "value": "192.168.1.2"}]
    eng = start_engine(cfg)
    reply = ask("hearth.lan", "A", eng.port)
    assert answers(reply) == ["192.168.1.2"] and reply.header.aa
    assert answers(ask("2.1.168.192.in-addr.arpa", "PTR", eng.port)) == ["hearth.lan."]
    nodata = ask("hearth.lan", "AAAA", eng.port)
    assert nodata.header.rcode == 0 and not nodata.rr
    cfg["local_records"] = [{"name": "hearth.lan", "type": "A", "value": "192.168.1.3"}]
    eng.rewrite_config(cfg)
    eng.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if answers(ask("hearth.lan", "A", eng.port)) == ["192.168.1.3"]:
            break
        time.sleep(0.1)
    assert answers(ask("hearth.lan", "A", eng.port)) == ["192.168.1.3"]
    assert answers(ask("www.example.com", "A", eng.port)) == ["192.0.2.10"]
    # a broken config on reload is refused and the old one keeps answering
    eng.config_path.write_text("dns:\n  listen: nope\n")
    eng.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert answers(ask("hearth.lan", "A", eng.port)) == ["192.168.1.3"]
    assert "reload refused" in eng.log()


def test_query_log_reaches_the_store_and_stats_are_readable(upstream, start_engine):
    eng = start_engine(_cfg(upstream))
    ask("www.example.com", "A", eng.port)
    ask("www.example.com", "A", eng.port)
    ask("nothing.example.com", "A", eng.port)
    deadline = time.monotonic() + 5
    rows = []
    while time.monotonic() < deadline and len(rows) < 3:
        time.sleep(0.2)
        store = open_store(str(eng.data_dir))
        rows = store.recent_queries(100)[::-1]
        store.close()
    assert [(r.qname, r.rcode, r.cached) for r in rows] == [("www.example.com", 0, 0), ("www.example.com", 0, 1),
                                                           ("nothing.example.com", 3, 0)]
    assert rows[0].client == "127.0.0.1" and rows[0].answer == "A 192.0.2.10"
    out = subprocess.run([sys.executable, "-m", "resolver.cli", "stats", "--json", "-c", str(eng.config_path)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["queries"] == 3 and stats["cache_hits"] == 1 and stats["upstream_queries"] == 2


def test_query_log_size_cap_holds_and_is_counted(upstream, start_engine):
    """querylog.max_rows through the running engine: the log keeps the newest entries, `hearth stats`
    counts what the cap deleted, and the hourly statistics still count every query."""
    cfg = _cfg(upstream)
    cfg["querylog"] = {"max_rows": 40, "flush_interval": 0.05, "batch_size": 10}
    cfg["local_records"] = [{"name": f"h{i}.lan", "type": "A", "value": f"192.168.1.{i + 1}"} for i in range(150)]
    eng = start_engine(cfg)
    for i in range(150):
        assert answers(ask(f"h{i}.lan", "A", eng.port)) == [f"192.168.1.{i + 1}"]
    stats: dict = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and stats.get("querylog_written", 0) < 150:
        time.sleep(0.2)
        out = subprocess.run([sys.executable, "-m", "resolver.cli", "stats", "--json", "-c", str(eng.config_path)],
                             capture_output=True, text=True, timeout=10)
        stats = json.loads(out.stdout)
    assert stats["querylog_written"] == 150 and stats["querylog_capped"] == 110, stats
    text = subprocess.run([sys.executable, "-m", "resolver.cli", "stats", "-c", str(eng.config_path)],
                          capture_output=True, text=True, timeout=10).stdout
    assert "querylog_capped: 110" in text
    store = open_store(str(eng.data_dir))
    try:
        assert store.count_queries() == 40
        assert [r.qname for r in store.recent_queries(3)] == ["h149.lan", "h148.lan", "h147.lan"]
        hour = 3600 * (int(time.time()) // 3600) - 3600
        assert sum(c.total for c in store.hourly_counts(hour, time.time())) == 150
        assert store.reason_counts(hour) == {"local-record": 150}
    finally:
        store.close()


def test_tcp_connection_cap_and_idle_timeout(upstream, start_engine):
    eng = start_engine(_cfg(upstream, tcp_max_connections=2, tcp_idle_timeout=0.8))
    held = [socket.create_connection(("127.0.0.1", eng.port), timeout=2) for _ in range(2)]
    time.sleep(0.1)
    extra = socket.create_connection(("127.0.0.1", eng.port), timeout=2)
    # the table is full: the newcomer takes the slot of the idlest connection (the first one) and is answered
    extra.sendall(struct.pack(">H", 33) + bytes(make_query("www.example.com", edns=None).pack()))
    size = struct.unpack(">H", extra.recv(2))[0]
    assert answers(DNSRecord.parse(extra.recv(size))) == ["192.0.2.10"]
    held[0].settimeout(2)
    assert held[0].recv(100) == b""
    extra.close()
    time.sleep(1.5)
    held[1].settimeout(2)  # idle past the time-out: the server has closed it
    assert held[1].recv(100) == b""
    for s in held:
        s.close()
    assert answers(ask("www.example.com", "A", eng.port, tcp=True)) == ["192.0.2.10"]


def test_reload_under_load_drops_no_query(upstream, start_engine):
    import threading
    cfg = _cfg(upstream)
    eng = start_engine(cfg)
    results = []

    def hammer():
        for i in range(300):
            reply = ask("www.example.com" if i % 2 else f"n{i}.example.com", "A", eng.port, timeout=2)
            results.append(reply is not None)

    t = threading.Thread(target=hammer)
    t.start()
    for _ in range(3):
        time.sleep(0.15)
        cfg["dns"]["upstream_timeout"] = cfg["dns"]["upstream_timeout"] + 0.1  # forces a new upstream pool
        eng.rewrite_config(cfg)
        eng.signal(signal.SIGHUP)
    t.join()
    assert len(results) == 300 and all(results)
    deadline = time.monotonic() + 5
    while eng.log().count("configuration reloaded") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert eng.log().count("configuration reloaded") == 3


def test_local_cname_follows_local_targets(upstream, start_engine):
    cfg = _cfg(upstream)
    cfg["local_records"] = [{"name": "hearth.lan", "type": "A", "value": "192.168.1.2"},
                            {"name": "filter.lan", "type": "CNAME", "value": "hearth.lan"},
                            {"name": "hearth.lan", "type": "AAAA", "value": "fd00::2"}]
    eng = start_engine(cfg)
    reply = ask("Filter.LAN", "A", eng.port)
    assert [(QTYPE.get(r.rtype), str(r.rdata)) for r in reply.rr] == [("CNAME", "hearth.lan."), ("A", "192.168.1.2")]
    assert str(reply.q.qname) == "Filter.LAN." and reply.header.aa
    assert answers(ask("filter.lan", "AAAA", eng.port), "AAAA") == ["fd00::2"]
    assert answers(ask("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "PTR",
                       eng.port)) == ["hearth.lan."]
    assert not upstream.queries  # answered locally, never forwarded
