"""Unblock requests share the review queue (``kind``: report | unblock, on groups and on each request) and
groups carry their registrable domain (``bad.example`` for ``a.bad.example``).

The old unique constraints had no name: PostgreSQL calls them TABLE_COLUMNS_key; on SQLite the batch
mode's naming convention names the reflected ones.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_names() -> tuple[str, str]:
    if op.get_bind().dialect.name == "postgresql":
        return "report_groups_domain_key", "reports_appliance_id_local_id_key"
    return "uq_report_groups_domain", "uq_reports_appliance_id"


def upgrade() -> None:
    groups_uq, reports_uq = _old_names()
    with op.batch_alter_table('report_groups', naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='report', nullable=False))
        batch_op.add_column(sa.Column('registrable', sa.String(length=253), server_default='', nullable=False))
        batch_op.drop_constraint(groups_uq, type_='unique')
        batch_op.create_unique_constraint('uq_report_groups_kind_domain', ['kind', 'domain'])
        batch_op.create_index('ix_report_groups_registrable', ['registrable'], unique=False)
    with op.batch_alter_table('reports', naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='report', nullable=False))
        batch_op.drop_constraint(reports_uq, type_='unique')
        batch_op.create_unique_constraint('uq_reports_appliance_kind_local', ['appliance_id', 'kind', 'local_id'])
    # the registrable domain of the groups already there
    from provider.psl import registrable_domain

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, domain FROM report_groups")).all()
    for group_id, domain in rows:
        conn.execute(sa.text("UPDATE report_groups SET registrable = :r WHERE id = :i"),
                     {"r": registrable_domain(domain), "i": group_id})


def downgrade() -> None:
    with op.batch_alter_table('reports') as batch_op:
        batch_op.drop_constraint('uq_reports_appliance_kind_local', type_='unique')
        batch_op.create_unique_constraint('uq_reports_appliance_id', ['appliance_id', 'local_id'])
        batch_op.drop_column('kind')
    with op.batch_alter_table('report_groups') as batch_op:
        batch_op.drop_index('ix_report_groups_registrable')
        batch_op.drop_constraint('uq_report_groups_kind_domain', type_='unique')
        batch_op.create_unique_constraint('uq_report_groups_domain', ['domain'])
        batch_op.drop_column('registrable')
        batch_op.drop_column('kind')
