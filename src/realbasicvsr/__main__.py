"""`python -m realbasicvsr` runs the command-line interface."""

from realbasicvsr.cli import main

raise SystemExit(main())
