"""The engine's full garbage-collection passes are counted and timed for `hearth stats`."""
from __future__ import annotations

import gc

from resolver.service.gc_pauses import GcPauses


def test_full_collections_are_counted_and_timed_and_younger_ones_are_not():
    pauses = GcPauses()
    pauses.install()
    pauses.install()   # once only
    automatic = gc.isenabled()
    gc.disable()   # only the passes made here
    try:
        junk = [[i] for i in range(50000)]
        gc.collect(0)
        assert pauses.full == 0
        gc.collect()
        gc.collect()
        del junk
        snap = pauses.snapshot()
        assert snap["gc_full_collections"] == 2
        assert 0 < snap["gc_full_pause_last_ms"] <= snap["gc_full_pause_max_ms"]
    finally:
        gc.callbacks.remove(pauses._on_gc)
        if automatic:
            gc.enable()
    assert pauses._on_gc not in gc.callbacks
