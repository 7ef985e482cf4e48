"""Tests for resolver.engine.upstream: URL parsing, the four transports, strategies, health, clean-up.

Everything runs against tests/dnsfake.FakeDNS on 127.0.0.1; nothing leaves the machine.
"""
from __future__ import annotations

import asyncio
import random
import socket
import time

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from resolver.engine.upstream import (
    UpstreamError,
    RCODE_FAILURES_TO_DOWN,
    UpstreamPool,
    UpstreamSpec,
    parse_upstream,
)
from resolver.engine.transports import (
    StreamTransport,
    UDPTransport,
    is_reply_to,
    question_key,
)
from tests.dnsfake import FakeDNS, make_test_certs, server_tls_context

RECORDS = {
    "www.example.com.": ["www.example.com. 300 IN A 192.0.2.1",
                         "www.example.com. 300 IN AAAA 2001:db8::1"],
    "big.example.com.": [f"big.example.com. 300 IN TXT \"{'x' * 200} {i}\"" for i in range(8)],
}
RECORDS.update({f"q{i}.example.com.": [f"q{i}.example.com. 60 IN A 192.0.2.{i}"]
                for i in range(50)})


def run(coro, limit: float = 15.0):
    """Run ``coro`` in a fresh loop; a hang is cancelled after ``limit`` seconds (without
    wrapping it in another task, so task-leak checks see only the code under test)."""
    async def guarded():
        handle = asyncio.get_running_loop().call_later(limit, asyncio.current_task().cancel)
        try:
            return await coro
        finally:
            handle.cancel()
    return asyncio.run(guarded())


def query(name: str = "www.example.com", qtype: str = "A") -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    q.header.id = random.getrandbits(16)
    return q


def other_tasks() -> list[asyncio.Task]:
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me and not t.done()]


def free_port() -> int:
    """A 127.0.0.1 port with nothing listening on it (UDP and TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def ask(pool: UpstreamPool, name: str = "www.example.com", qtype: str = "A"):
    q = query(name, qtype)
    raw, url = await pool.query(q.pack())
    reply = DNSRecord.parse(raw)
    assert reply.header.id == q.header.id
    assert str(reply.q.qname).lower() == str(q.q.qname).lower() and reply.q.qtype == q.q.qtype
    return reply, url


@pytest.fixture
def fake():
    with FakeDNS(RECORDS) as f:
        yield f


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def dot(certs):
    with FakeDNS(RECORDS, tls_context=server_tls_context(certs[1], certs[2])) as f:
        yield f


@pytest.fixture
def doh(certs):
    ctx = server_tls_context(certs[1], certs[2], alpn=["http/1.1"])
    with FakeDNS(RECORDS, tls_context=ctx, doh=True) as f:
        yield f


# ------------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("url, spec", [
    ("udp://192.0.2.1", ("udp", "192.0.2.1", 53, None, "")),
    ("192.0.2.1", ("udp", "192.0.2.1", 53, None, "")),
    ("192.0.2.1:5353", ("udp", "192.0.2.1", 5353, None, "")),
    (" UDP://192.0.2.1:53/ ", ("udp", "192.0.2.1", 53, None, "")),
    ("udp://[::1]:5399", ("udp", "::1", 5399, None, "")),
    ("[2001:db8::1]", ("udp", "2001:db8::1", 53, None, "")),
    ("tcp://[2001:DB8::53]", ("tcp", "2001:db8::53", 53, None, "")),
    ("tls://1.1.1.1#cloudflare-dns.com", ("tls", "1.1.1.1", 853, "cloudflare-dns.com", "")),
    ("tls://9.9.9.9:8853", ("tls", "9.9.9.9", 8853, None, "")),
    ("https://1.1.1.1/dns-query", ("https", "1.1.1.1", 443, "1.1.1.1", "/dns-query")),
    ("https://1.1.1.1", ("https", "1.1.1.1", 443, "1.1.1.1", "/dns-query")),
    ("https://Dns.Example/dns-query#192.0.2.7",
     ("https", "192.0.2.7", 443, "dns.example", "/dns-query")),
    ("https://dns.example:8443/q?x=1#[2001:db8::7]",
     ("https", "2001:db8::7", 8443, "dns.example", "/q?x=1")),
])
def test_parse_upstream_good(url, spec):
    s = parse_upstream(url)
    assert isinstance(s, UpstreamSpec) and s.url == url.strip()
    assert (s.scheme, s.host, s.port, s.tls_name, s.path) == spec


@pytest.mark.parametrize("url, message", [
    ("ftp://192.0.2.1", "unsupported scheme 'ftp' (use udp://, tcp://, tls:// or https://)"),
    ("udp://", "missing host"),
    ("tcp://:53", "missing host"),
    ("", "empty"),
    ("udp://192.0.2.1:99999", "bad port '99999'"),
    ("udp://192.0.2.1:", "bad port ''"),
    ("udp://192.0.2.1:5x", "bad port '5x'"),
    ("udp://dns.google", "needs an IP address"),
    ("tls://dns.google#dns.google", "needs an IP address"),
    ("udp://192.0.2.1#name.example", "only for tls:// and https://"),
    ("tcp://192.0.2.1/dns-query", "path is only allowed for https://"),
    ("udp://[::1", "missing ']'"),
    ("udp://[dns.example]:53", "bad IPv6 address"),
    ("udp://user@192.0.2.1", "user names"),
    ("https://dns.example/dns-query", "needs its IP address after '#'"),
    ("https://dns.example/dns-query#not-an-ip", "is not an IP address"),
    ("https://192.0.2.1/dns-query#192.0.2.2", "only needed when the URL names a host"),
    ("https://bad_host!/dns-query#192.0.2.1", "bad host name"),
    ("tls://192.0.2.1#", "nothing after '#'"),
])
def test_parse_upstream_bad(url, message):
    with pytest.raises(ValueError) as e:
        parse_upstream(url)
    assert message in str(e.value)


def test_pool_rejects_bad_settings():
    with pytest.raises(ValueError, match="at least one"):
        UpstreamPool([])
    with pytest.raises(ValueError, match="unknown strategy"):
        UpstreamPool(["192.0.2.1"], strategy="random")
    with pytest.raises(ValueError, match="unsupported scheme"):
        UpstreamPool(["192.0.2.1", "quic://192.0.2.2"])


# ------------------------------------------------------------------------------------ wire bits

def test_question_key_case_compression_and_garbage():
    q = query("WwW.Example.COM", "AAAA").pack()
    assert question_key(q) == (b"\x03www\x07example\x03com\x00", 28, 1)
    # Hand-made reply whose question name is a compression pointer to a later copy of the name.
    body = b"\x03www\x07example\x03com\x00"
    reply = q[:2] + b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xc0\x12" + b"\x00\x1c\x00\x01"
    reply += body  # at offset 18 = 12 (header) + 2 (pointer) + 4 (type, class)
    assert question_key(reply) == question_key(q)
    assert is_reply_to(reply, q[0] << 8 | q[1], question_key(q))
    assert not is_reply_to(q, q[0] << 8 | q[1], question_key(q))  # QR clear: a query
    assert question_key(b"\0" * 11) is None
    assert question_key(q[:-3]) is None
    assert question_key(q[:12] + b"\xc0\x0c\0\1\0\1") is None  # pointer loop
    assert question_key(b"\0" * 4 + b"\0\0" + b"\0" * 6) == ()


# ----------------------------------------------------------------------------------- transports

def test_udp_answers(fake):
    async def main():
        pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}"])
        reply, url = await ask(pool, "WWW.example.com")
        assert url == f"udp://127.0.0.1:{fake.port}"
        assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.1"]
        reply, _ = await ask(pool, "nothing.example.com")
        assert reply.header.rcode == RCODE.NXDOMAIN  # an answer, not a failure
        assert pool.status()[0]["healthy"] and pool.status()[0]["errors"] == 0
        await pool.close()
    run(main())
    assert [q[0] for q in fake.queries] == ["udp", "udp"]


def test_udp_ignores_mismatched_replies(fake):
    fake.udp_junk = True  # a wrong-ID and a wrong-question reply arrive before the real one

    async def main():
        pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}"], timeout=1.0, attempts=1)
        reply, _ = await ask(pool)
        assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.1"]
        await pool.close()
    run(main())


def test_udp_replies_sharing_an_id_are_matched_by_question_and_junk_is_ignored():
    """Two queries in flight with one ID on one socket: each gets the reply to its own question, whatever the
    order and the name's case; short datagrams, queries (QR off), other questions and a repeated reply are
    dropped, and nothing is left waiting."""
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.bind(("127.0.0.1", 0))
    up.setblocking(False)

    def reply_to(packet: bytes, name: bytes = b"") -> bytes:
        end = packet.index(0, 12) + 5
        question = packet[12:end] if not name else name + packet[end - 4:end]
        return (packet[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question
                + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc0\x00\x02" + bytes((len(packet) & 0xFF,)))

    async def main():
        loop = asyncio.get_running_loop()
        t = UDPTransport("127.0.0.1", up.getsockname()[1], sockets=1)
        qa = query("a.example.com").pack()
        qb = query("bb.example.com").pack()
        qb = qa[:2] + qb[2:]   # the same ID
        ta = asyncio.ensure_future(t.exchange(qa, question_key(qa)))
        tb = asyncio.ensure_future(t.exchange(qb, question_key(qb)))
        got = []
        while len(got) < 2:
            got.append(await loop.sock_recvfrom(up, 2048))
        peer = got[0][1]
        ra, rb = reply_to(qa), reply_to(qb)
        upper = ra[:12] + ra[12:12 + len(b"\x01a\x07example\x03com\x00")].upper() + ra[12 + 15:]
        for junk in (b"\x00", ra[:11], rb[:2] + b"\x01" + rb[3:],   # short, short, a query not a reply
                     reply_to(qa, b"\x01c\x07example\x03com\x00"),   # the ID but another question
                     rb[:12 + 5],                                       # cut inside the question
                     ra[:12] + ra[12:-16].replace(b"\x00\x01\x00\x01", b"\x00\x1c\x00\x01", 1) + ra[-16:],   # AAAA
                     rb, upper, rb):                                    # the real ones, then b again
            up.sendto(junk, peer)
        assert await asyncio.wait_for(tb, 5) == rb
        assert await asyncio.wait_for(ta, 5) == upper
        await asyncio.sleep(0.05)   # the repeated reply arrives with nobody waiting for it
        assert t.pending_count() == 0
        await t.close()
    try:
        run(main())
    finally:
        up.close()


def test_udp_truncated_reply_is_retried_over_tcp(fake):
    fake.truncate.add("big.example.com.")

    async def main():
        pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}"])
        reply, url = await ask(pool, "big.example.com", "TXT")
        assert not reply.header.tc and len(reply.rr) == 8
        assert url == f"udp://127.0.0.1:{fake.port}"
        await pool.close()
    run(main())
    assert [q[0] for q in fake.queries] == ["udp", "tcp"]


def test_udp_sockets_rotate_and_timeouts_leave_nothing_pending(fake):
    async def main():
        t = UDPTransport("127.0.0.1", fake.port, sockets=1, max_uses=3)
        for _ in range(9):
            q = query().pack()
            assert (await t.exchange(q, question_key(q)))[:2] == q[:2]
        fake.mode = "drop"
        for _ in range(5):
            q = query().pack()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(t.exchange(q, question_key(q)), 0.05)
        assert t.pending_count() == 0
        await t.close()
    run(main())
    assert len({peer[1] for peer in fake.udp_peers[:9]}) == 3  # a new source port every 3 queries


def test_tcp_answers_and_reconnects_after_idle_close(fake):
    async def main():
        pool = UpstreamPool([f"tcp://127.0.0.1:{fake.port}"])
        reply, _ = await ask(pool, "www.example.com", "AAAA")
        assert [str(rr.rdata) for rr in reply.rr] == ["2001:db8::1"]
        await pool.close()

        t = StreamTransport("127.0.0.1", fake.port, idle_timeout=0.1)
        for pause in (0, 0.3):
            await asyncio.sleep(pause)
            q = query().pack()
            assert (await t.exchange(q, question_key(q)))[:2] == q[:2]
        assert t.connects == 2
        await t.close()
    run(main())
    assert fake.connections["tcp"] == 3


def test_tcp_pipelines_on_one_connection_with_out_of_order_replies(fake):
    # q0 waits longest, q49 not at all: replies come back in (roughly) reverse order.
    fake.delays.update({f"q{i}.example.com.": (49 - i) * 0.004 for i in range(50)})

    async def main():
        pool = UpstreamPool([f"tcp://127.0.0.1:{fake.port}"], timeout=3.0)
        results = await asyncio.gather(*(ask(pool, f"q{i}.example.com") for i in range(50)))
        for i, (reply, _) in enumerate(results):
            assert [str(rr.rdata) for rr in reply.rr] == [f"192.0.2.{i}"]
        await pool.close()
    run(main())
    assert fake.connections["tcp"] == 1
    received = [q[1] for q in fake.queries]
    sent = [r[1] for r in fake.replies]
    assert sorted(received) == sorted(sent) and sent != received
    assert sent[0] == "q49.example.com."


def test_tcp_reply_with_wrong_question_is_an_error(fake):
    fake.wrong_question = True

    async def main():
        pool = UpstreamPool([f"tcp://127.0.0.1:{fake.port}"], timeout=1.0, attempts=1)
        t0 = time.monotonic()
        with pytest.raises(UpstreamError, match="does not match"):
            await pool.query(query().pack())
        assert time.monotonic() - t0 < 0.5  # an error at once, not a time-out
        await pool.close()
    run(main())


@pytest.mark.parametrize("suffix", ["#dns.test", ""])  # certificate name, or the IP SAN
def test_tls_answers_and_reuses_connection(dot, certs, suffix):
    async def main():
        pool = UpstreamPool([f"tls://127.0.0.1:{dot.port}{suffix}"], ca_file=certs[0])
        for _ in range(3):
            reply, _ = await ask(pool)
            assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.1"]
        await pool.close()
    run(main())
    assert dot.connections["tls"] == 1 and len(dot.queries) == 3


@pytest.mark.parametrize("suffix, ca", [("#wrong.test", True), ("#dns.test", False)])
def test_tls_verification_failure_is_upstream_error(dot, certs, suffix, ca):
    async def main():
        pool = UpstreamPool([f"tls://127.0.0.1:{dot.port}{suffix}"],
                            ca_file=certs[0] if ca else None, timeout=1.0, attempts=2)
        with pytest.raises(UpstreamError, match="TLS certificate check failed"):
            await pool.query(query().pack())
        assert not pool.status()[0]["healthy"]
        await pool.close()
    run(main())
    assert dot.queries == []


@pytest.mark.parametrize("form", ["name", "ip"])
def test_doh_answers_with_id_zero_and_keeps_connection_alive(doh, certs, form):
    url = (f"https://dns.test:{doh.port}/dns-query#127.0.0.1" if form == "name"
           else f"https://127.0.0.1:{doh.port}/dns-query")

    async def main():
        pool = UpstreamPool([url], ca_file=certs[0])
        for name in ("www.example.com", "q1.example.com", "q2.example.com", "nope.example.com"):
            reply, got = await ask(pool, name)  # ask() checks the caller's ID came back
            assert got == url
        assert reply.header.rcode == RCODE.NXDOMAIN
        await pool.close()
    run(main())
    assert doh.connections["doh"] == 1
    assert doh.ids == [0, 0, 0, 0]
    method, target, headers = doh.http_requests[0]
    assert (method, target) == ("POST", "/dns-query")
    assert headers["content-type"] == headers["accept"] == "application/dns-message"
    host = "dns.test" if form == "name" else "127.0.0.1"
    assert headers["host"] == f"{host}:{doh.port}"


def test_doh_concurrent_queries_use_a_small_pool(doh, certs):
    async def main():
        pool = UpstreamPool([f"https://dns.test:{doh.port}/dns-query#127.0.0.1"], ca_file=certs[0])
        doh.delay = 0.02
        await asyncio.gather(*(ask(pool, f"q{i}.example.com") for i in range(12)))
        await asyncio.gather(*(ask(pool, f"q{i}.example.com") for i in range(12)))
        await pool.close()
    run(main())
    assert 1 < doh.connections["doh"] <= 4


def test_doh_chunked_and_connection_close(doh, certs):
    doh.doh_chunked = doh.http_close = True

    async def main():
        pool = UpstreamPool([f"https://dns.test:{doh.port}/dns-query#127.0.0.1"], ca_file=certs[0])
        for _ in range(2):
            reply, _ = await ask(pool)
            assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.1"]
        await pool.close()
    run(main())
    assert doh.connections["doh"] == 2


def test_doh_http_error_and_wrong_name(doh, certs):
    doh.http_status = 500

    async def main():
        pool = UpstreamPool([f"https://dns.test:{doh.port}/dns-query#127.0.0.1"], ca_file=certs[0],
                            attempts=1)
        with pytest.raises(UpstreamError, match="HTTP status 500"):
            await pool.query(query().pack())
        await pool.close()
        pool = UpstreamPool([f"https://other.test:{doh.port}/dns-query#127.0.0.1"],
                            ca_file=certs[0], attempts=1)
        with pytest.raises(UpstreamError, match="TLS certificate check failed"):
            await pool.query(query().pack())
        await pool.close()
    run(main())


# ------------------------------------------------------------------------------ strategies etc.

def test_failover_skips_a_dead_upstream_and_returns_after_health_check():
    with FakeDNS(RECORDS) as first, FakeDNS(RECORDS) as second:
        a, b = f"udp://127.0.0.1:{first.port}", f"udp://127.0.0.1:{second.port}"
        first.mode = "drop"

        async def main():
            pool = UpstreamPool([a, b], timeout=0.2, health_interval=0.1)
            await pool.start()
            _, url = await ask(pool)
            assert url == b
            st = pool.status()
            assert not st[0]["healthy"] and "timed out" in st[0]["last_error"]
            assert st[0]["errors"] == 1 and st[1]["healthy"]
            seen = len([q for q in first.queries if q[1] == "www.example.com."])
            _, url = await ask(pool)  # straight to the healthy second one
            assert url == b
            assert len([q for q in first.queries if q[1] == "www.example.com."]) == seen

            first.mode = "answer"
            for _ in range(50):
                await asyncio.sleep(0.05)
                if pool.status()[0]["healthy"]:
                    break
            assert pool.status()[0]["healthy"]
            _, url = await ask(pool)
            assert url == a
            await pool.close()
        run(main())
        assert (".", "NS") in {(q[1], q[2]) for q in first.queries}  # health probes


@pytest.mark.parametrize("mode", ["servfail", "refused"])
def test_servfail_and_refused_fail_over_and_mark_down_when_repeated(mode):
    with FakeDNS(RECORDS) as first, FakeDNS(RECORDS) as second:
        first.mode = mode

        async def main():
            pool = UpstreamPool([f"tcp://127.0.0.1:{first.port}", f"udp://127.0.0.1:{second.port}"])
            _, url = await ask(pool)
            assert url.endswith(str(second.port))
            assert pool.status()[0]["last_error"] == mode.upper()
            assert pool.status()[0]["healthy"]  # one SERVFAIL can be one broken domain, not a broken resolver
            for _ in range(RCODE_FAILURES_TO_DOWN - 1):
                await ask(pool)
            assert not pool.status()[0]["healthy"]  # ... but every query failing is
            await pool.check_health()
            # SERVFAIL to the probe keeps it down; REFUSED for the root is what a forwarder limited
            # to some zones says while working, so the probe lets real queries judge it again
            assert pool.status()[0]["healthy"] == (mode == "refused")
            first.mode = "answer"
            await pool.check_health()
            assert pool.status()[0]["healthy"]
            await pool.close()
        run(main())


def test_answers_to_odd_queries_never_change_health():
    """REFUSED, FORMERR, NOTIMP or silence for odd types is the query's fault, not the upstream's."""
    with FakeDNS(RECORDS) as fake:
        fake.type_modes = {"NULL": "refused", "HINFO": "formerr", "65280": "notimp", "65281": "drop",
                           "11": "servfail"}

        async def main():
            pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}"], timeout=0.2, attempts=1)
            for _ in range(3):
                for qtype in (10, 13, 65280, 65281, 11):
                    packet = query().pack()
                    packet = packet[:-4] + qtype.to_bytes(2, "big") + packet[-2:]
                    try:
                        await pool.query(packet)
                    except UpstreamError:
                        pass
            st = pool.status()[0]
            assert st["healthy"] and st["health_changes"] == 0 and st["last_error"] is None
            assert not pool.known_down(30)
            await ask(pool)
            await pool.close()
        run(main())


def test_refused_connection_fails_over_fast_and_all_unhealthy_are_still_tried(fake):
    dead = f"udp://127.0.0.1:{free_port()}"

    async def main():
        pool = UpstreamPool([dead, f"tcp://127.0.0.1:{free_port()}", f"udp://127.0.0.1:{fake.port}"],
                            timeout=1.0)
        t0 = time.monotonic()
        _, url = await ask(pool)
        assert url.endswith(str(fake.port)) and time.monotonic() - t0 < 0.5
        assert [s["healthy"] for s in pool.status()] == [False, False, True]
        assert pool.status()[0]["last_error"] == "connection refused"
        fake.mode = "servfail"
        with pytest.raises(UpstreamError):  # now all three are unhealthy ...
            await pool.query(query().pack())
        fake.mode = "answer"
        _, url = await ask(pool)  # ... but they are still tried, in order
        assert url.endswith(str(fake.port))
        await pool.close()
    run(main())


def test_fastest_prefers_the_faster_upstream():
    with FakeDNS(RECORDS, delay=0.08) as slow, FakeDNS(RECORDS) as quick:
        async def main():
            pool = UpstreamPool([f"udp://127.0.0.1:{slow.port}", f"tcp://127.0.0.1:{quick.port}"],
                                strategy="fastest")
            urls = [(await ask(pool))[1] for _ in range(6)]
            assert set(urls[:2]) == {u.spec.url for u in pool._ups}  # each tried once
            assert all(u.endswith(str(quick.port)) for u in urls[2:])
            st = pool.status()
            assert st[0]["ewma_ms"] > 50 > st[1]["ewma_ms"]
            assert st[0]["queries"] == 1 and st[1]["queries"] == 5
            await pool.close()
        run(main())


def test_timeout_raises_within_attempts_times_timeout(fake):
    fake.mode = "drop"

    async def main():
        pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}", f"tcp://127.0.0.1:{fake.port}"],
                            timeout=0.2, attempts=3)
        t0 = time.monotonic()
        with pytest.raises(UpstreamError) as e:
            await pool.query(query().pack())
        elapsed = time.monotonic() - t0
        assert 0.55 < elapsed < 0.9
        assert str(e.value).count("timed out after 0.2s") == 3
        assert [s["queries"] for s in pool.status()] == [2, 1]
        assert pool._ups[0].transport.pending_count() == 0
        assert pool._ups[1].transport.pending_count() == 0
        await pool.close()
    run(main())
    assert [q[0] for q in fake.queries] == ["udp", "tcp", "udp"]


def test_close_leaves_no_pending_tasks(fake, dot, doh, certs):
    async def main():
        pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}", f"tcp://127.0.0.1:{fake.port}",
                             f"tls://127.0.0.1:{dot.port}#dns.test",
                             f"https://dns.test:{doh.port}/dns-query#127.0.0.1"],
                            ca_file=certs[0], health_interval=0.05)
        await pool.start()
        for u in pool._ups:  # one query through every transport, including TC fallback
            await u.transport.exchange(q := query().pack(), question_key(q))
        fake.truncate.add("big.example.com.")
        await ask(pool, "big.example.com", "TXT")
        await asyncio.sleep(0.12)  # let a health round run
        fake.mode = "drop"
        slow = asyncio.ensure_future(pool.query(query().pack()))  # in flight while closing
        await asyncio.sleep(0.05)
        assert other_tasks()
        await pool.close()
        with pytest.raises(UpstreamError):
            await slow
        assert other_tasks() == []
        with pytest.raises(UpstreamError, match="closed"):
            await pool.query(query().pack())
    run(main())
    assert fake.connections["tcp"] == 2  # the tcp:// upstream, and the TC fallback of udp://
    assert dot.connections["tls"] == 1 and doh.connections["doh"] == 1


def test_status_fields(fake):
    async def main():
        pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}"])
        assert pool.status() == [{"url": f"udp://127.0.0.1:{fake.port}", "healthy": True,
                                  "ewma_ms": None, "queries": 0, "errors": 0, "last_error": None,
                                  "health_changes": 0}]
        await ask(pool)
        st = pool.status()[0]
        assert st["queries"] == 1 and isinstance(st["ewma_ms"], float)
        await pool.close()
    run(main())


def test_fake_server_answers_types_and_modes(fake):
    """The fake itself: NODATA, NXDOMAIN with SOA, qtype recorded by name."""
    async def main():
        pool = UpstreamPool([f"udp://127.0.0.1:{fake.port}"])
        reply, _ = await ask(pool, "www.example.com", "MX")
        assert reply.header.rcode == RCODE.NOERROR and not reply.rr
        assert reply.auth[0].rtype == QTYPE.SOA
        await pool.close()
    run(main())
    assert fake.queries == [("udp", "www.example.com.", "MX")]
