"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL, and migration
0002 (kinds, registrable domains) keeps the reports of a database made by 0001."""
from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from provider.config import ProviderConfig
from provider.db import make_engine, migrate
from provider.models import Base


def test_migrations_match_the_models_and_keep_old_reports(tmp_path, database):
    engine = make_engine(ProviderConfig(data_dir=str(tmp_path), database=database).database_url)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO organisations (id, name, created) VALUES (1, 'O', 0)"))
        conn.execute(sa.text("INSERT INTO appliances (id, organisation_id, token_hash, registered, hearth_version, "
                             "last_error) VALUES ('app-0000000000000001', 1, 'h', 0, '', '')"))
        conn.execute(sa.text("INSERT INTO report_groups (id, domain, status, category, reason, decided_by, "
                             "first_seen, last_seen) VALUES (1, 'a.bad.com.vn', 'new', '', '', '', 1, 2)"))
        conn.execute(sa.text("INSERT INTO reports (group_id, appliance_id, local_id, category, note, lang, ts, "
                             "received) VALUES (1, 'app-0000000000000001', 7, 'gambling', 'n', 'vi', 1, 2)"))
    migrate(engine)               # as `hearth provider run` does at start
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT kind, domain, registrable FROM report_groups")).all() == \
            [("report", "a.bad.com.vn", "bad.com.vn")]
        assert conn.execute(sa.text("SELECT kind, local_id FROM reports")).all() == [("report", 7)]
        # the same request number of another kind is another row now; of the same kind, refused
        conn.execute(sa.text("INSERT INTO report_groups (id, kind, domain, registrable, status, category, reason, "
                             "decided_by, first_seen, last_seen) VALUES (2, 'unblock', 'a.bad.com.vn', "
                             "'bad.com.vn', 'new', '', '', '', 1, 2)"))
        conn.execute(sa.text("INSERT INTO reports (group_id, appliance_id, kind, local_id, category, note, lang, ts, "
                             "received) VALUES (2, 'app-0000000000000001', 'unblock', 7, '', '', '', 1, 2)"))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO report_groups (kind, domain, registrable, status, category, reason, "
                                 "decided_by, first_seen, last_seen) VALUES ('unblock', 'a.bad.com.vn', '', 'new', "
                                 "'', '', '', 1, 2)"))
        raise AssertionError("a second unblock group of one domain was accepted")
    except sa.exc.IntegrityError:
        pass
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff
    engine.dispose()
