"""``python -m hwb_sandbox``: the same as the ``hwb-sandbox`` command."""

from hwb_sandbox.cli import main

raise SystemExit(main())
