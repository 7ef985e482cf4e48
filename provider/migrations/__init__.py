"""Alembic migrations of the provider's database (run at start by provider.db.migrate)."""
