"""Hearth's DNS engine and appliance core, in rooms that import only downhill.

Layers, lowest first (a package may import its own layer and those below; see tests/test_layers.py):

1. ``resolver.base``: names, config option declaration (and ``resolver.__version__`` here)
2. ``blocklists``: list formats, downloads, the signed feed, the compiled index
3. ``resolver.policy``: who is asking and what their profile allows
4. ``resolver.store``: the store's protocol and its SQLite implementation
5. ``resolver.engine``: the query path, in the order a packet takes it
6. ``resolver.service``: the config file and the running engine
7. ``resolver.ops``: doctor, backup, the ``hearth run`` supervisor
8. ``webui``: the Flask admin UI, block page and API
9. ``resolver.cli``: the ``hearth`` command

docs/architecture.md is the map.
"""

__version__ = "0.1.0"
