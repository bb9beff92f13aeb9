"""`python -m cockpit`: the same as the `psa-cockpit` command."""
from cockpit.cli import main

raise SystemExit(main())
