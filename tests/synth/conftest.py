"""Load the hwb_synth fixtures for these tests.

Once the top-level ``tests/conftest.py`` declares ``pytest_plugins = ["hwb_synth.pytest_plugin"]``, the
import below can go. The ``sys.path`` fallback only matters while the project is not installed in the venv.
"""

import sys
from pathlib import Path

try:
    import hwb_synth  # noqa: F401
except ModuleNotFoundError:  # not installed (pip install -e .): use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from hwb_synth.pytest_plugin import *  # noqa: F403
