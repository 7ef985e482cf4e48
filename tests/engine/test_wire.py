"""The raw fast-path parser against real captured packets and hostile input."""
from __future__ import annotations

import json
import random

import pytest
from dnslib import QTYPE, DNSRecord

from resolver.engine import wire
from resolver.engine.wire import KEY_DO, KEY_EDNS, KEY_RD, parse_question


def _packets(test_data, name):
    return [json.loads(line) for line in (test_data / "dns-wire" / name).read_text().splitlines()]


def test_queries_parse_like_dnslib(test_data):
    for row in _packets(test_data, "dnslib-test-packets.jsonl"):
        if row["kind"] != "query":
            continue
        data = bytes.fromhex(row["hex"])
        ref = DNSRecord.parse(data)
        q = parse_question(data)
        assert q is not None, row["question"]
        assert wire.key_name(q.key) == str(ref.q.qname).rstrip(".").lower()
        assert wire.key_qtype(q.key) == ref.q.qtype
        assert q.qend == len(data) - (11 if q.key[-1] & KEY_EDNS else 0)
        assert bool(q.key[-1] & KEY_RD) == bool(ref.header.rd)


def test_responses_are_not_fast_path_queries_and_ttl_offsets_match(test_data):
    for row in _packets(test_data, "dnslib-test-packets.jsonl"):
        if row["kind"] != "response":
            continue
        data = bytes.fromhex(row["hex"])
        assert parse_question(data) is None  # QR set: never answered from the fast path
        ref = DNSRecord.parse(data)
        ttls = [r.ttl for r in ref.rr + ref.auth + ref.ar if r.rtype != QTYPE.OPT]
        offsets = wire.ttl_offsets(data)
        assert [int.from_bytes(data[o:o + 4], "big") for o in offsets] == ttls, row["question"]


def test_case_is_folded_in_the_key_but_not_qtype_bytes():
    a = DNSRecord.question("WwW.ExAmple.COM", "A").pack()
    b = DNSRecord.question("www.example.com", "A").pack()
    assert parse_question(a).key == parse_question(b).key
    # qtype 65 (HTTPS) is byte 'A': lower-casing it would collide with type 97
    https = parse_question(DNSRecord.question("x.test", "HTTPS").pack()).key
    assert wire.key_qtype(https) == 65


def test_edns_flags_and_limits():
    q = DNSRecord.question("example.com", "A")
    assert parse_question(q.pack()).limit == 512
    from dnslib import EDNS0
    q.add_ar(EDNS0(udp_len=4096, flags="do"))
    parsed = parse_question(q.pack(), edns_cap=1232)
    assert parsed.limit == 1232 and parsed.key[-1] & KEY_DO and parsed.key[-1] & KEY_EDNS
    q2 = DNSRecord.question("example.com", "A")
    q2.add_ar(EDNS0(udp_len=100))
    assert parse_question(q2.pack()).limit == 512
    q3 = DNSRecord.question("example.com", "A")
    q3.add_ar(EDNS0(udp_len=1232, version=1))
    assert parse_question(q3.pack()) is None  # BADVERS is the slow path's job


def test_error_reply_echoes_question_and_never_answers_responses():
    q = DNSRecord.question("Example.com", "A").pack()
    out = wire.error_reply(q, wire.RCODE_REFUSED)
    rec = DNSRecord.parse(out)
    assert rec.header.rcode == wire.RCODE_REFUSED and rec.header.qr and str(rec.q.qname) == "Example.com."
    assert rec.header.id == DNSRecord.parse(q).header.id
    assert wire.error_reply(out, wire.RCODE_FORMERR) is None
    assert wire.error_reply(b"\x00\x01", wire.RCODE_FORMERR) is None
    header_only = wire.error_reply(b"\x12\x34\x01\x00" + b"\xff" * 20, wire.RCODE_FORMERR)
    assert header_only[:2] == b"\x12\x34" and header_only[3] & 0x0F == wire.RCODE_FORMERR


def test_truncated_keeps_question_and_opt():
    from dnslib import EDNS0
    q = DNSRecord.question("big.example", "TXT")
    q.add_ar(EDNS0(udp_len=1232))
    data = q.pack()
    parsed = parse_question(data)
    reply = q.reply()
    for _ in range(40):
        reply.add_answer(*DNSRecord.parse(DNSRecord.question("big.example", "TXT").pack()).rr)
    packed = data[:2] + b"\x81\x80" + data[4:]
    tc = DNSRecord.parse(wire.truncated(packed, parsed.qend, parsed.key[-1], 1232))
    assert tc.header.tc and tc.header.a == 0 and str(tc.q.qname) == "big.example."
    assert any(r.rtype == QTYPE.OPT for r in tc.ar)


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_corpus_and_mutations_never_raise(test_data, seed):
    rng = random.Random(seed)
    seeds = [bytes.fromhex(r["hex"]) for r in _packets(test_data, "c-ares-fuzzinput.jsonl")]
    seeds += [bytes.fromhex(r["hex"]) for r in _packets(test_data, "dnslib-test-packets.jsonl")]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds)[:4096])
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data) + 1)]
        data = bytes(data)
        q = parse_question(data)
        if q is not None:
            assert q.qend <= len(data)
            wire.key_name(q.key)
        wire.error_reply(data, wire.RCODE_FORMERR)


def test_rewrite_reply_keeps_records_and_replaces_opt(test_data):
    rows = _packets(test_data, "dnslib-test-packets.jsonl")
    checked = 0
    for row in rows:
        if row["kind"] != "response":
            continue
        data = bytes.fromhex(row["hex"])
        ref = DNSRecord.parse(data)
        qsec = data[12:wire.skip_name(data, 12) + 4]
        for flags in (KEY_RD, KEY_RD | KEY_EDNS | KEY_DO):
            key = qsec.lower() + bytes((flags,))
            try:
                packed, offsets, ttls, _neg = wire.rewrite_reply(data, key, 1232)
            except ValueError:
                continue  # the caller falls back to dnslib for these
            out = DNSRecord.parse(packed)
            assert [str(r) for r in out.rr] == [str(r) for r in ref.rr], row["question"]
            assert [str(r) for r in out.auth] == [str(r) for r in ref.auth]
            opts = [r for r in out.ar if r.rtype == QTYPE.OPT]
            assert len(opts) == (1 if flags & KEY_EDNS else 0)
            if opts:
                assert opts[0].rclass == 1232 and opts[0].ttl & 0x8000
            assert out.header.rd and out.header.ra and not out.header.aa
            assert [int.from_bytes(packed[o:o + 4], "big") for o in offsets] == ttls
            checked += 1
    assert checked > 100


def test_rewrite_reply_rejects_other_questions_and_garbage():
    q = DNSRecord.question("a.example", "A")
    r = q.reply()
    good = bytes(r.pack())
    key = bytes(q.pack())[12:] + b"\x01"
    wire.rewrite_reply(good, key, 1232)
    other = bytes(DNSRecord.question("b.example", "A").reply().pack())
    for bad in (other, good[:15], bytes(q.pack())):
        with pytest.raises(ValueError):
            wire.rewrite_reply(bad, key, 1232)


def test_summarise_answers_matches_dnslib(test_data):
    for row in _packets(test_data, "dnslib-test-packets.jsonl"):
        if row["kind"] != "response":
            continue
        data = bytes.fromhex(row["hex"])
        ref = DNSRecord.parse(data)
        text = wire.summarise_answers(data)
        for rr in ref.rr[:3]:
            if rr.rtype in (QTYPE.A, QTYPE.AAAA, QTYPE.CNAME):
                assert f"{QTYPE[rr.rtype]} {str(rr.rdata).rstrip('.')}" in text.replace(". ", " ").rstrip("."), \
                    (text, str(rr))
