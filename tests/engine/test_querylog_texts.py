"""The query log's texts (the name of a cache key, the summary of its answers) and rows are the same from the
compiled accelerator (``_fastpath.key_name``, ``summarise_answers``, ``summarise_entry``, ``query_rows``) as from
the pure-Python code (``wire.key_name``, ``wire.summarise_answers``, ``answers.summarise_entry``,
``querylog.query_rows``), for every reply, hostile ones included: where Python raises,
C raises ValueError, and the log shows "?" either way. The writer uses C only when the accelerator is on, and
the rows it stores are the same both ways."""
from __future__ import annotations

import random
import struct
import time

import pytest

from resolver.engine import accel, wire
from resolver.engine.answers import describe, summarise_entry
from resolver.engine.cache import CacheEntry
from resolver.engine.querylog import QueryLog, QueryLogConfig, query_rows
from resolver.store.sqlite import open_store
from tests.engine.test_reply_parts import _hostile, _key, _reply, _seeds

FAST = accel.fastpath if getattr(accel.fastpath, "summarise_answers", None) is not None else None
needs_c = pytest.mark.skipif(FAST is None, reason="the accelerator was not built here or HEARTH_NO_ACCEL is set")


def _python(fn, data: bytes):
    try:
        return fn(data)
    except (IndexError, ValueError, struct.error):
        return None


def _c(fn, data: bytes):
    try:
        return fn(data)
    except ValueError:
        return None


def _more_replies() -> list[bytes]:
    """Answers of every kind the summary names, odd bytes in names, pointers chains and loops, many records."""
    made = [
        _reply("v6.example.com", ["v6.example.com. 60 IN AAAA 2001:db8::1",
                                  "v6.example.com. 60 IN AAAA ::ffff:102:304"], qtype="AAAA"),
        _reply("ns.example.com", ["ns.example.com. 60 IN NS a.iana-servers.net.", "ns.example.com. 60 IN NS b.x."],
               qtype="NS"),
        _reply("4.3.2.1.in-addr.arpa", ["4.3.2.1.in-addr.arpa. 60 IN PTR host.example."], qtype="PTR"),
        _reply("t.example.com", ['t.example.com. 60 IN TXT "hello"'], qtype="TXT"),
        _reply("s.example.com", ["s.example.com. 60 IN SRV 1 2 3 t.example.",
                                 "s.example.com. 60 IN SOA a. b. 1 2 3 4 5", "s.example.com. 60 IN CAA 0 issue \"x\"",
                                 "s.example.com. 60 IN A 192.0.2.1"]),
        _reply("mx.example.com", ["mx.example.com. 60 IN MX 5 .", "mx.example.com. 60 IN MX 10 mx.example.com."],
               qtype="MX"),
        _reply("root.example.com", ["root.example.com. 60 IN CNAME ."]),
        _reply("x.example.com", [f"x.example.com. 60 IN A 10.0.0.{i}" for i in range(4)]),
    ]
    dname = _reply("d.example.com", ["d.example.com. 60 IN CNAME other.example."])   # made a DNAME (type 39)
    at = dname.index(b"\x00\x05\x00\x01\x00\x00\x00\x3c")
    made.append(dname[:at] + b"\x00\x27" + dname[at + 2:])
    # a label with a dot, a backslash, a high byte and a NUL in it; a label "length" of 64-191 in a CNAME target
    base = _reply("odd.example.com", ["odd.example.com. 60 IN CNAME abcdefgh.example."])
    at = base.index(b"\x08abcdefgh")
    for label in (b"\x08a.b\\c\xffde", b"\x08\x00\x7f\x80\xc3\xa9xyz", b"\x48abcdefgh"):
        made.append(base[:at] + label + base[at + 9:])
    # a CNAME target that is a chain of 40 pointers (past the 32 hops a name may take)
    chain = bytearray(_reply("c.example.com", ["c.example.com. 60 IN CNAME t.example."]))
    at = chain.index(b"\x01t")
    start = len(chain)
    for k in range(40):
        chain += b"\x01z\xc0" + bytes((start + 4 * (k + 1),)) if k < 39 else b"\x01z\x00"
    made.append(bytes(chain[:at]) + b"\xc0" + bytes((start,)) + bytes(chain[at + 2:]))
    return made


def _cases(test_data) -> list[bytes]:
    seeds = _seeds(test_data)
    extra = _more_replies()
    return [r for r, _k in seeds] + extra + [r for r, _k in _hostile(seeds + [(r, b"") for r in extra], 6000)]


@needs_c
def test_c_and_python_give_the_same_summary_for_every_reply(test_data):
    cases = _cases(test_data)
    described = damaged = 0
    for data in cases:
        py = _python(wire.summarise_answers, data)
        assert _c(FAST.summarise_answers, data) == py, data.hex()
        described += py is not None and py != ""
        damaged += py is None
    assert described > 1000 and damaged > 300       # both kinds well covered


def _entry(data: bytes, split: int, tag: bytes = b"") -> CacheEntry:
    """An entry holding ``data`` cut as the cache cuts a reply (head, question, tail), at any point."""
    entry = CacheEntry.__new__(CacheEntry)
    entry.head, entry.tail = data[2:12], data[max(12, split):]
    entry.key = tag + data[12:max(12, split)] + b"\x01" if split >= 0 else b""
    return entry


@needs_c
def test_c_and_python_give_the_same_summary_for_every_entry(test_data):
    rng = random.Random(11)
    for data in _cases(test_data)[::3]:
        try:
            qend = wire.skip_name(data, 12) + 4
        except (IndexError, ValueError):
            qend = rng.randrange(10, 40)
        for split, tag in ((qend, b""), (qend, b"\xc1\x07"), (rng.randrange(8, 60), b""), (-1, b""), (qend, b"\xc1")):
            entry = _entry(data, split, tag)
            py = _python(lambda e: summarise_entry(e), entry)
            assert _c(FAST.summarise_entry, entry) == py, (data.hex(), split, tag)
    big = _reply("big.example.com", [f"big.example.com. 60 IN AAAA 2001:db8::{i:x}" for i in range(200)],
                 qtype="AAAA")   # past the C code's stack buffer
    entry = _entry(big, wire.skip_name(big, 12) + 4)
    assert FAST.summarise_entry(entry) == summarise_entry(entry) == "AAAA 2001:db8::, AAAA 2001:db8::1, " \
        "AAAA 2001:db8::2, +197"
    with pytest.raises(AttributeError):
        FAST.summarise_entry(object())
    entry.tail = "text"
    with pytest.raises(TypeError):
        FAST.summarise_entry(entry)


@needs_c
def test_c_and_python_give_the_same_names_for_every_key():
    rng = random.Random(7)
    keys = [_key("www.example.com", 1, 1), b"\x00\x00\x01\x00\x01\x01", _key("a.b.c.d.e.f.g", 28, 0)]
    alphabet = b"abcXYZ09-_.\\\x00\x7f\x80\xff\xc0 "
    for _ in range(3000):
        labels = [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 63))) for _ in range(rng.randint(1, 5))]
        name = b"".join(bytes((len(x),)) + x for x in labels)
        keys.append(name + b"\x00" + bytes(rng.randrange(256) for _ in range(5)))
    for k in keys:
        assert FAST.key_name(k) == wire.key_name(k), k.hex()
    for cut in (b"", b"\x05ab", b"\x03abc"):   # a name running past the key's end: an error both ways
        assert _python(wire.key_name, cut) is None and _c(FAST.key_name, cut) is None


def test_describe_shows_a_damaged_answer_as_a_question_mark():
    data = _reply("a.example.com", ["a.example.com. 60 IN A 192.0.2.1"])
    entry = CacheEntry(data, wire.skip_name(data, 12) + 4, 60, 0.0)
    entry.key = _key("a.example.com", 1, 1)
    entry.tail = entry.tail[:5]   # the answer record cut short
    assert describe(entry) == "?"
    if FAST is not None:
        entry.summary = None
        assert describe(entry, FAST.summarise_entry) == "?"


@pytest.mark.parametrize("mode", ["python", "accelerated"])
def test_the_writer_uses_the_accelerator_only_when_it_is_on(mode, monkeypatch):
    if mode == "python":
        monkeypatch.setattr(accel, "fastpath", None)
    elif FAST is None:
        pytest.skip("the accelerator was not built here")
    qlog = QueryLog(QueryLogConfig(), None)
    assert qlog._rows is (query_rows if mode == "python" else FAST.query_rows)


def _batch(test_data, now: float) -> list:
    """Ring entries of every shape: hits (with and without a view tag), misses with an entry or a text for the
    answer, (name, type) questions, summaries already made or empty, damaged replies, a key seen twice."""
    replies = [r for r, _k in _seeds(test_data)][:60] + _more_replies()
    out = []
    for i, data in enumerate(replies):
        qend = wire.skip_name(data, 12) + 4
        entry = _entry(data, qend, b"\xc1\x05" if i % 4 == 1 else b"")
        entry.summary, entry.rcode, entry.reason = (None, data[3] & 15, None if i % 3 else "category:ads")
        if i % 7 == 3:
            entry.summary = ""
        if i % 11 == 5:
            entry.tail = entry.tail[:7]                        # damaged: summarised as "?"
        key = data[12:qend].lower() + b"\x01"
        out.append((now + i, f"10.0.0.{i % 5}", entry))
        out.append((now + i, "10.0.0.9", key, 0, entry, "udp://192.0.2.53:53", 1.5 * i, False, None))
        out.append((now + i, "10.0.0.9", key, 3, "A 192.0.2.7", "", 0, True, "local-record"))
        out.append((now + i, "fe80::1", ("odd.example", 16), 0, "", "", 0.0, True, "rewrite"))
    return out


@needs_c
def test_c_and_python_make_the_same_rows(test_data):
    now = time.monotonic()
    fast_batch, slow_batch = _batch(test_data, now), _batch(test_data, now)
    fast_names: dict = {}
    slow_names: dict = {}
    for _ in range(2):                                        # the second time from the memo and kept summaries
        fast = FAST.query_rows(fast_batch, 1.7e9, fast_names)
        slow = query_rows(slow_batch, 1.7e9, slow_names)
        assert fast == slow and len(fast) == len(fast_batch)
        assert [type(v) for r in fast for v in r] == [type(v) for r in slow for v in r]
        assert fast_names == slow_names
        assert [e[2].summary for e in fast_batch if len(e) == 3] == [e[2].summary for e in slow_batch if len(e) == 3]
    texts = {r[5] for r in fast}
    assert "?" in texts and "" in texts and any(t.startswith("CNAME") for t in texts)
    with pytest.raises(ValueError):
        FAST.query_rows([(now, "10.0.0.2")], 0.0, {})
    with pytest.raises(TypeError):
        FAST.query_rows(fast_batch, 0.0, [])


def _written(tmp_path, replies: list[bytes]) -> list[tuple]:
    """The rows a writer stores for misses and cache hits of these replies."""
    store = open_store(str(tmp_path))
    qlog = QueryLog(QueryLogConfig(), lambda: store)
    now = time.monotonic()
    for i, data in enumerate(replies):
        try:
            qend = wire.skip_name(data, 12) + 4
            key = data[12:qend].lower() + b"\x01"
            entry = CacheEntry(data, qend, 60, now)
        except (IndexError, ValueError, struct.error):
            continue
        entry.key = key if i % 3 else b"\xc0\x01" + key          # some with a view tag
        qlog.record(now, "10.0.0.2", key, entry.rcode, entry, "udp://192.0.2.53:53", 1.25, False, None)
        qlog.log_hit(now, "10.0.0.3", entry)
    qlog._write(qlog._take())
    rows = [(r.client, r.qname, r.qtype, r.answer, r.upstream, r.cached) for r in store.recent_queries(100000)]
    store.close()
    return rows


@needs_c
def test_the_stored_rows_are_the_same_with_and_without_the_accelerator(tmp_path, test_data, monkeypatch):
    replies = [r for r, _k in _seeds(test_data)] + _more_replies()
    fast = _written(tmp_path / "c", replies)
    monkeypatch.setattr(accel, "fastpath", None)
    slow = _written(tmp_path / "py", replies)
    assert fast == slow and len(fast) > 100
    assert any(r[3].startswith("A 192.0.2.1") for r in fast) and any(r[3].startswith("CNAME") for r in fast)
