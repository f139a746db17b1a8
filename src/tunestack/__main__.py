"""`python -m tunestack` is the same as the `tunestack` command."""

from tunestack.cli import main

raise SystemExit(main())
