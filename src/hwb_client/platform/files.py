"""Files written atomically and privately: kept for the modules that import it; everything lives in
``platform.filesystem`` (the one place that knows modes and no-follow opens)."""

from __future__ import annotations

from hwb_client.platform.filesystem import atomic_write, fsync_dir, world_accessible, write_secret_file

__all__ = ["atomic_write", "fsync_dir", "world_accessible", "write_secret_file"]
