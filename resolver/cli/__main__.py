"""``python -m resolver.cli``: the ``hearth`` command."""
from resolver.cli.main import main

raise SystemExit(main())
