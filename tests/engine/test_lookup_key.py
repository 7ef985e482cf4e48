"""A query's cache key (``wire.lookup_key``, and ``_fastpath.lookup_key`` in C on the miss path): both give the same
result for every input, hostile ones included (truncations, flipped bytes, OPT records that lie, random bytes)."""
from __future__ import annotations

import random

import pytest

from resolver.engine import accel, wire

FAST = getattr(accel.fastpath, "lookup_key", None)
CAPS = (512, 1232, 4096, 100, 65535)


def _query(rng: random.Random) -> bytes:
    chars = b"abcXYZ019-_\x00\xc0." if rng.random() < 0.1 else b"abcXYZ019-_"   # now and then a zero or a pointer
    labels = [bytes(rng.choice(chars) for _ in range(rng.randint(1, 12))) for _ in range(rng.randint(0, 4))]
    name = b"".join(bytes((len(lb),)) + lb for lb in labels) + b"\x00"
    flags = bytes((rng.choice((0x00, 0x01, 0x08, 0x81)), rng.choice((0x00, 0x10, 0x20))))
    head = rng.randbytes(2) + flags + b"\x00\x01\x00\x00\x00\x00"
    tail = bytes((0, rng.choice((1, 28, 255)), 0, rng.choice((1, 3))))
    if rng.random() < 0.4:
        return head + b"\x00\x00" + name + tail
    udp = rng.choice((0, 511, 512, 1232, 4096, 65535))
    options = rng.randbytes(rng.choice((0, 0, 4, 9)))
    opt = (b"\x00\x00\x29" + udp.to_bytes(2, "big") + bytes((0, rng.choice((0, 0, 1)))) +
           bytes((rng.choice((0, 0x80)), 0)) + len(options).to_bytes(2, "big") + options)
    return head + b"\x00\x01" + name + tail + opt


def _packets(rng: random.Random) -> list:
    out = []
    for _ in range(3000):
        p = _query(rng)
        out.append(p)
        out.append(p[:rng.randrange(len(p) + 1)])                     # cut anywhere
        b = bytearray(p)
        for _ in range(rng.randint(1, 3)):                            # a few bytes changed
            b[rng.randrange(len(b))] = rng.randrange(256)
        out.append(bytes(b))
        out.append(p + rng.randbytes(rng.randint(1, 5)))              # trailing bytes
    out += [rng.randbytes(rng.randint(0, 60)) for _ in range(2000)]
    out += [b"", b"\x00" * 17, b"\x00" * 12 + b"\x00\x00\x01\x00\x01"]
    return out


@pytest.mark.skipif(FAST is None, reason="the accelerator was not built here (no compiler) or HEARTH_NO_ACCEL is set")
def test_c_lookup_key_matches_python() -> None:
    rng = random.Random(19)
    keys = 0
    for p in _packets(rng):
        for cap in CAPS:
            want = wire.lookup_key(p, cap)
            assert FAST(p, cap) == want, (p, cap)
            keys += want is not None
    assert keys > 5000     # plenty of plain queries, not only refusals


@pytest.mark.skipif(FAST is None, reason="the accelerator was not built here (no compiler) or HEARTH_NO_ACCEL is set")
def test_c_lookup_key_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        FAST(bytearray(20), 1232)
    with pytest.raises(TypeError):
        FAST(b"\x00" * 20)


def test_pipeline_uses_the_python_twin_without_the_accelerator(monkeypatch) -> None:
    from resolver.engine import pipeline as pipeline_mod

    monkeypatch.setattr(accel, "fastpath", None)
    assert pipeline_mod.pick_lookup_key() is wire.lookup_key
