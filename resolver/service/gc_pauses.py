"""How long the garbage collector's full passes stop the engine: every answer waits while one runs.

A full (oldest-generation) pass walks every tracked object, and the answer cache's entries are most of them,
so its pause grows with the cache. ``hearth stats`` shows the count and the longest and last pause.
"""
from __future__ import annotations

import gc
import time


class GcPauses:
    """Times the collector's full passes in this process (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.full = 0
        self.last_ms = 0.0
        self.max_ms = 0.0
        self._started = 0.0

    def install(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            ms = (time.perf_counter() - self._started) * 1000.0
            self.full += 1
            self.last_ms = ms
            if ms > self.max_ms:
                self.max_ms = ms

    def snapshot(self) -> dict:
        return {"gc_full_collections": self.full, "gc_full_pause_last_ms": round(self.last_ms, 2),
                "gc_full_pause_max_ms": round(self.max_ms, 2)}
