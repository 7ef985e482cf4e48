"""The query path, in the order a packet takes it.

``listener`` (UDP/TCP sockets, rate limits, TCP fairness) hands bytes to ``pipeline``, the chain of small
stages: ``wire`` parses and builds messages, ``localrecords`` answers local names, the policy decides
(``resolver.policy``), ``answers`` builds blocked and rewritten replies, ``cache`` serves and stores
(serve-stale included), ``upstream`` with its ``transports`` (UDP, TCP, DoT, DoH) forwards; ``querylog``
writes each answer to the store in batches and ``stats`` counts. ``dnsconfig`` is the ``dns`` config
section; ``startup`` turns bind and data-dir failures into one-line errors.
May import: ``resolver.base``, ``resolver.policy``, ``resolver.store``, ``blocklists``.
"""
