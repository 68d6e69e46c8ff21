#!/usr/bin/python3 -IB
"""/usr/lib/hwb-client/hwb-client: start hwb-client with the vendored packages for this python3.

The package ships one tree of dependencies per supported Python version (python3.11, python3.12,
python3.13 beside this file); -I keeps PYTHONPATH, the user's site-packages and the current directory
out of the way, and -B writes no __pycache__ into /usr/lib (files no package would own).
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
tree = here / f"python{sys.version_info[0]}.{sys.version_info[1]}"
if not tree.is_dir():
    found = ", ".join(sorted(p.name for p in here.glob("python3.*"))) or "none"
    sys.stderr.write(
        f"hwb-client: error: this package has no packages for Python {sys.version_info[0]}.{sys.version_info[1]} "
        f"(it has: {found}); install the hwb-client package built for this Debian or Ubuntu release\n"
    )
    sys.exit(3)
sys.path.insert(0, str(tree))

from hwb_client.launch import main  # noqa: E402 - the vendored tree must be on sys.path first

sys.exit(main())
