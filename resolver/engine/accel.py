"""The optional compiled accelerator, chosen at import: ``resolver/engine/_fastpath.c``, built by pip from
source when a C compiler and Python's headers are there (setup.py, ``optional=True``).

``fastpath`` is the module, or None: not built (no compiler, not Linux) or HEARTH_NO_ACCEL=1 in the
environment. Users read ``accel.fastpath`` when they set up a socket, so a test can switch it off.
The UDP listener (:mod:`resolver.engine.listener`) then answers plain cache hits in C and reads and
sends in batches (recvmmsg/sendmmsg); the upstream UDP transport (:mod:`resolver.engine.transports`)
sends the queries of one event-loop turn together and reads replies in batches. Without it the same
code paths run in pure Python, one datagram per system call. The miss path takes its steps from it too, each
with a pure-Python twin giving the same results (tests/engine/test_miss_twins.py): the question check
(``checked_question``), the upstream query (``upstream_query_for``), the reply match (``match_replies``), the
upstream answer's entry (``reply_entry``, twin :func:`resolver.engine.fetcher.reply_entry`), the view's copy
(``derive``), the reply splice (``entry_reply``) and the cache insert (``cache_put``); entries made there are
left to reference counting (see ``_fastpath.c``). The query log's writer makes its rows with
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
