"""``python -m bot``: the same command line as ``dcs-tasks-bot`` (what the Procfile runs)."""

from bot.cli import main

raise SystemExit(main())
