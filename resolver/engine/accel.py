"""The optional compiled accelerator, chosen at import: ``resolver/engine/_fastpath.c``, built by pip from
source when a C compiler and Python's headers are there (setup.py, ``optional=True``).

``fastpath`` is the module, or None: not built (no compiler, not Linux) or HEARTH_NO_ACCEL=1 in the
environment. Users read ``accel.fastpath`` when they set up a socket, so a test can switch it off.
The UDP listener (:mod:`resolver.engine.listener`) then answers plain cache hits in C and reads and
sends in batches (recvmmsg/sendmmsg); the upstream UDP transport (:mod:`resolver.engine.transports`)
sends the queries of one event-loop turn together and reads replies in batches. Without it the same
code paths run in pure Python, one datagram per system call. The fetcher (:mod:`resolver.engine.fetcher`)
also turns upstream replies into cache entries with ``_fastpath.reply_parts`` (the pure-Python twin:
:func:`resolver.engine.wire.reply_parts`, same results), and the query log's writer makes its rows with
``_fastpath.query_rows`` (the twin: :func:`resolver.engine.querylog.query_rows`).
"""
from __future__ import annotations

from types import ModuleType
from typing import Optional

from resolver.base.compiled import load_compiled


def load() -> Optional[ModuleType]:
    """The compiled module when it was built and HEARTH_NO_ACCEL is not set (or "0")."""
    return load_compiled("resolver.engine._fastpath")


fastpath: Optional[ModuleType] = load()
