"""The ``hearth`` command line: the top of the house. It may import every package (``webui`` included);
nothing imports it (other processes run it as ``python -m resolver.cli``).

``main`` builds the parser and the daemon commands (``run``, ``dns``, ``web``, ``lists``, config checks);
``policy`` the profile, device, schedule and allow commands; ``ops`` doctor, backup and restore; ``web``
admin users, tokens and the setup code.
"""
