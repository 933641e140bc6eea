"""What the deciding worker serves, for the other worker processes of the same server to follow.

One JSON file in the server's control folder: ``ZOOSERVE_CONTROL_DIR``, which the server process
makes fresh at start-up and its workers inherit. It is replaced whole by a rename, so a reader
never sees half of it, and it names, for each model, the versions served and the pinned one.
Without a control folder (a registry built in one process, as tests do) there is nothing to share
and both calls do nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from serving.settings import Settings

FILE = "repository.json"


@dataclass
class Assigned:
    versions: list[str]  # oldest first
    pinned: str | None = None


@dataclass
class Stamp:
    """The file as a follower last read it (inode, modification time, size): a rename makes a new inode."""

    seen: tuple[int, int, int] | None = field(default=None)


def write(settings: Settings, assignment: dict[str, Assigned]) -> None:
    if settings.control_dir is None:
        return
    path = settings.control_dir / FILE
    staged = path.with_name(f".{FILE}.{os.getpid()}")
    staged.write_text(json.dumps({name: asdict(assigned) for name, assigned in assignment.items()}))
    os.replace(staged, path)


def read_if_changed(settings: Settings, stamp: Stamp) -> dict[str, Assigned] | None:
    """The assignment, where the file changed since ``stamp`` (which it then updates); else None."""
    if settings.control_dir is None:
        return None
    path = settings.control_dir / FILE
    try:
        info = path.stat()
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen == stamp.seen:
            return None
        body = json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet, or replaced between the two calls: read it next time
        return None
    stamp.seen = seen
    return {name: Assigned(**entry) for name, entry in body.items()}
