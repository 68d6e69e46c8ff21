"""Group ownership of files other accounts read (the status file for a monitoring group)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def set_group(path: Path, group: str) -> None:
    """Give ``path`` to ``group`` (a name or a number); a no-op on Windows, where ACLs apply."""
    if sys.platform == "win32":  # pragma: no cover
        return
    import grp

    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    os.chown(path, -1, gid)
