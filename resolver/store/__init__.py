"""Where the appliance's state lives: devices, profiles, schedules, users, the audit trail, requests,
reports and the query log.

``protocol`` is the store's interface and its row types (what the engine, the UI and the command line may ask
of a store); ``open`` opens the store a configuration names (``store:``). Two implementations share their SQL:
``sqlcommon`` (the base class, SELECTs, row conversions) and the rooms ``policy_rooms``, ``web_rooms`` and
``querylog_rooms`` (mixins); ``sqlite`` is the embedded default (one file, ``schema_sqlite`` migrations appended,
never edited) and ``postgres`` the store several nodes share (``schema_postgres``, LISTEN/NOTIFY); ``transfer``
moves a SQLite store into PostgreSQL.
May import: ``resolver.base``, ``resolver.policy`` (profile data), ``blocklists``.
"""
