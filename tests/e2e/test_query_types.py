"""Every query type reaches the upstream and comes back: issue 12 item 5.

The UDP upstream code once lower-cased a reply before matching it to its waiter, which also
rewrote a type byte between 0x41 and 0x5A (HTTPS is 65): such replies never matched, the client
got SERVFAIL after the time-out and pending slots stayed taken. Here a raw upstream on loopback
answers any type, and `hearth dns` must pass every type from 1 to 65535 through.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from dnslib import QTYPE

from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS

# Types the engine answers itself rather than forwarding (RFC 8482 ANY, zone transfers, meta-types).
ANSWERED_LOCALLY = {41, 251, 252, 255}


class EchoUpstream:
    """A UDP upstream that answers every query with NOERROR and one record of the asked type.

    The reply's question name is upper-cased (as 0x20-randomising or case-changing servers do),
    so the engine must compare names case-insensitively and types exactly."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            if len(data) < 17 or data[2] & 0x80:
                continue
            z = data.find(0, 12)
            qname, qtype = data[12:z + 1], data[z + 1:z + 3]
            self.seen.add(struct.unpack(">H", qtype)[0])
            flags = bytes([0x80 | (data[2] & 0x01), 0x80])
            rr = b"\xc0\x0c" + qtype + b"\x00\x01" + struct.pack(">IH", 300, 4) + b"\x01\x02\x03\x04"
            reply = data[:2] + flags + b"\x00\x01\x00\x01\x00\x00\x00\x00" + qname.upper() + data[z + 1:z + 5] + rr
            self.sock.sendto(reply, peer)

    def __enter__(self) -> EchoUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _query(qid: int, name: bytes, qtype: int) -> bytes:
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", qtype, 1)


def _ask_all(port: int, types: list[int], window: int = 200, rounds: int = 3) -> dict[int, int]:
    """Send one query per type (a distinct name each, so none is answered from the cache) with
    ``window`` in flight; return {type: rcode} of the replies received."""
    got: dict[int, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.5)
        for _ in range(rounds):
            todo = [t for t in types if t not in got]
            for start in range(0, len(todo), window):
                batch = todo[start:start + window]
                for t in batch:
                    label = f"t{t}".encode()
                    name = bytes([len(label)]) + label + b"\x05types\x07example\x00"
                    s.sendto(_query(t, name, t), ("127.0.0.1", port))
                want = set(batch)
                deadline = time.monotonic() + 3
                while want and time.monotonic() < deadline:
                    try:
                        data = s.recv(4096)
                    except socket.timeout:
                        break
                    qid = data[0] << 8 | data[1]
                    if qid in want:
                        want.discard(qid)
                        got[qid] = data[3] & 0x0F
            if len(got) == len(types):
                break
    return got


def test_every_query_type_is_answered_by_the_upstream(start_engine):
    with EchoUpstream() as up:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{up.port}"], "upstream_timeout": 0.5,
                                    "upstream_attempts": 1},
                            "querylog": {"enabled": False}})
        types = [t for t in range(1, 65536) if t not in ANSWERED_LOCALLY]
        got = _ask_all(eng.port, types)
    missing = [t for t in types if t not in got]
    failed = {t: rc for t, rc in got.items() if rc != 0}
    assert not missing, f"{len(missing)} types never answered, e.g. {missing[:20]}"
    assert not failed, f"{len(failed)} types not NOERROR, e.g. {sorted(failed.items())[:20]}"


@pytest.fixture
def upstream():
    records = {"www.example.com.": ["www.example.com. 300 IN A 192.0.2.10",
                                    "www.example.com. 300 IN AAAA 2001:db8::10"]}
    with FakeDNS(records) as fake:
        yield fake


def test_https_query_is_answered_as_fast_as_an_a_query(upstream, start_engine):
    """Phones and browsers send HTTPS (65) beside A/AAAA for nearly every name."""
    eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"], "upstream_timeout": 2,
                                "upstream_attempts": 3}})
    for i in range(20):
        name = f"n{i}.example.com"
        upstream.add(name + ".", f"{name}. 300 IN A 192.0.2.{i + 1}")
        t0 = time.monotonic()
        a = ask(name, "A", eng.port)
        t_a = time.monotonic() - t0
        t0 = time.monotonic()
        https = ask(name, "HTTPS", eng.port)
        t_https = time.monotonic() - t0
        assert answers(a) == [f"192.0.2.{i + 1}"]
        assert https is not None and https.header.rcode == 0, https
        assert https.q.qtype == QTYPE.HTTPS
        assert t_https < max(0.5, 5 * t_a), (t_a, t_https)
