"""The query log's roll-up of a batch (``querylog_rooms.roll_up``, column by column) gives exactly what the
row-by-row definition gives: the stored rows, the hourly counts, reasons and names (with client 0 = all
clients), and the ql_strings codes made in the same order (client, reason, upstream, row after row)."""
from __future__ import annotations

import random

from resolver.store.protocol import QueryRow, is_blocked
from resolver.store.querylog_rooms import roll_up


def _reference(rows, code, node):
    """Row by row, as the roll-up is defined."""
    raw, hours, reasons, names, codes = [], {}, {}, {}, {}

    def coded(text):
        if text not in codes:
            codes[text] = code(text)
        return codes[text]

    for row in rows:
        ts, client_text, qname, qtype, rcode, answer, upstream, latency, cached, reason_text = row[:10]
        ms = int(round(ts * 1000))
        client = coded(client_text)
        reason = coded(reason_text) if reason_text else None
        blocked = int(is_blocked(reason_text)) if reason_text else 0
        up = coded(upstream) if upstream else None
        raw.append((ms, client, qname, qtype, rcode, answer, up, int(round(latency * 1000)), int(bool(cached)),
                    reason, node))
        hour = ms // 3_600_000
        for c in (client, 0):
            h = hours.setdefault((hour, c), [0, 0, 0])
            h[0] += 1
            h[1] += blocked
            h[2] |= 1 << (ms // 60_000 % 60)
            reasons[(hour, c, reason or 0)] = reasons.get((hour, c, reason or 0), 0) + 1
            names[(c, hour, blocked, qname)] = names.get((c, hour, blocked, qname), 0) + 1
    return raw, hours, reasons, names


def _batch(rng: random.Random, n: int, *, odd_clients: bool = False) -> list:
    start = 1_750_000_000 + rng.random() * 7200
    clients = ["10.0.0.2", "10.0.0.3", "fe80::1"] + ([""] if odd_clients else [])
    reasons = [None, None, "", "category:adult", "service:tiktok", "local-record", "safe-search:google", "stale",
               "schedule:bedtime", "upstream-failed"]
    ups = ["", "", "udp://192.0.2.53:53", "tls://dns.example:853", "category:adult"]   # a text two ways
    out = []
    for i in range(n):
        row = (start + i * rng.choice((0.001, 0.5, 7.3)), rng.choice(clients), f"n{rng.randrange(40)}.example",
               rng.choice((1, 28, 65)), rng.choice((0, 3)), rng.choice(("A 192.0.2.1", "", "?")), rng.choice(ups),
               rng.choice((0.0, 1.2345, 17, 0.0004)), rng.choice((True, False, 0, 1)), rng.choice(reasons))
        out.append(QueryRow(*row, node="gw1") if i % 2 else row)
    return out


def _coder(made: list):
    """A ql_strings stand-in: codes from 8 on, the texts in the order they were coded."""
    def code(text: str) -> int:
        made.append(text)
        return len(made) + 7
    return code


def test_the_roll_up_is_the_row_by_row_one():
    rng = random.Random(5)
    for trial in range(60):
        rows = _batch(rng, rng.choice((1, 2, 50, 3000)), odd_clients=trial % 4 == 0)
        got_texts: list[str] = []
        want_texts: list[str] = []
        got = roll_up(rows, _coder(got_texts), 5)
        want = _reference(rows, _coder(want_texts), 5)
        assert got_texts == want_texts                     # the same codes, made in the same order
        assert got[0] == want[0]                           # the stored rows
        for g, w in zip(got[1:], want[1:]):                # the roll-ups (the order of a dict's keys aside)
            assert dict(g) == w


def test_an_empty_batch_rolls_up_to_nothing():
    assert roll_up([], lambda t: 1, None) == ([], {}, {}, {})
