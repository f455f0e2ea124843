"""``python -m flows``: the bridge's command line."""

from flows.cli import main

raise SystemExit(main())
