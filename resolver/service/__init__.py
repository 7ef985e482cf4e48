"""The running appliance: its configuration file and the engine process that wires things together.

``config`` assembles every section (each declared beside its code) into one ``Config`` loaded from YAML;
``server`` is the ``Engine``: listeners, pipeline, the compiled lists and their updates, the store, the
scheduler and the control socket; ``control`` is that socket's small protocol (server and client), which the
web UI and the command line use to reach a running engine; ``workers`` runs ``dns.workers`` engines as
processes on shared SO_REUSEPORT sockets under a small parent that restarts them and sums their statistics
(``worker_stats``).
May import: everything below it (``resolver.engine``, ``store``, ``policy``, ``base``, ``blocklists``).
"""
