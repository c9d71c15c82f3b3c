"""`python -m formula ...`: the same command line as the `formula` script."""

from .cli import main

raise SystemExit(main())
