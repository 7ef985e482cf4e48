"""The parents' console: every page needs a signed-in user; changes need the admin role.

The views live in three modules by area: ``policy`` (devices, profiles, schedules), ``monitor``
(dashboard, query log, device reports, lists) and ``system`` (access requests, harmful-site
reports, settings, users, audit log), and ``budgets`` (the time-budget forms). Changes go through
:mod:`webui.actions` (time budgets: :mod:`webui.budgets`).
"""
from .blueprint import bp

from . import budgets, monitor, policy, system  # noqa: E402,F401  (register the views)

__all__ = ["bp"]
