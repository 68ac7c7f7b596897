"""What the site is built from: the archive checkout and the annotations database."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ARCHIVE_ENV = "ALEXNET_ARCHIVE"
DB_ENV = "ALEXNET_ARCHIVE_DB"
POST_LIMIT_ENV = "ALEXNET_ARCHIVE_POST_LIMIT"
DEFAULT_POST_LIMIT = 5          # visitor notes per address ...
POST_WINDOW_S = 600             # ... in this many seconds


def _post_limit_from_env() -> int:
    # Read here (not only in from_env) so that `serve` with one worker, which builds its
    # Settings directly, honours the variable too.
    try:
        return max(0, int(os.environ.get(POST_LIMIT_ENV, DEFAULT_POST_LIMIT)))
    except ValueError:
        return DEFAULT_POST_LIMIT


@dataclass(frozen=True, slots=True)
class Settings:
    archive: Path
    db: Path | None = None  # the annotations SQLite file (the annotations issue reads it)
    root_path: str = ""     # where the site is mounted behind a proxy ("" = the server's root)
    # Visitor notes one client address may post per POST_WINDOW_S ($ALEXNET_ARCHIVE_POST_LIMIT).
    post_limit: int = field(default_factory=_post_limit_from_env)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings for a worker process started by uvicorn (`serve --workers N` passes them this way)."""
        from archive.locate import resolve_archive_path

        db = os.environ.get(DB_ENV)
        return cls(archive=resolve_archive_path(None), db=Path(db) if db else None,
                   root_path=os.environ.get("ALEXNET_ARCHIVE_ROOT_PATH", ""))

    def to_env(self) -> dict[str, str]:
        env = {ARCHIVE_ENV: str(self.archive), "ALEXNET_ARCHIVE_ROOT_PATH": self.root_path,
               POST_LIMIT_ENV: str(self.post_limit)}
        if self.db is not None:
            env[DB_ENV] = str(self.db)
        return env
