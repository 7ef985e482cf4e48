"""Where the appliance's state lives: devices, profiles, schedules, users, the audit trail, requests,
reports and the query log.

``protocol`` is the store's interface and its row types (what the engine, the UI and the command line may ask
of a store); ``sqlite`` is the embedded implementation (one file, migrations appended, never edited). A shared
PostgreSQL store for several nodes belongs here beside it.
May import: ``resolver.base``, ``resolver.policy`` (profile data), ``blocklists``.
"""
