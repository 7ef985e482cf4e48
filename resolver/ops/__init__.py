"""The operator's tools: ``doctor`` (checks a machine and says what to fix), ``backup`` (one-file backup and
restore) and ``supervisor`` (``hearth run``: the engine and the web UI as child processes, restarted
with a growing delay, given up after repeated fast failures).
May import: ``resolver.service`` and everything below it; never ``webui`` or ``resolver.cli``.
"""
