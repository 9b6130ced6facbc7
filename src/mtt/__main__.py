"""`python -m mtt` runs the command-line interface."""

from mtt.cli import main

raise SystemExit(main())
