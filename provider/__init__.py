"""The list administrators' service: reports in from the fleet, review, signed feed out, fleet view.

``hearth provider run -c provider.yaml`` serves it (waitress). A Flask app factory (:func:`provider.app.create_app`)
with blueprints for the JSON API (``/api/v1``) and the published feed (``/feed``); SQLAlchemy 2 models
(provider.models) in SQLite (the trial default) or PostgreSQL (psycopg 3), migrated by Alembic at start.
The feed is built, signed and checked by :mod:`blocklists.feed` (one implementation for the appliance and
the provider).

Layer: beside webui. May import resolver (the version), resolver.base and blocklists; never resolver.engine,
resolver.service or the command line (which imports it).
"""
