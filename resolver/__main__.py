"""``python -m resolver``: the ``hearth`` command."""
from resolver.cli.main import main

raise SystemExit(main())
