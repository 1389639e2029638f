"""Files the agent writes: atomically, so a reader sees the old file or the new, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old file or the new, never half.

    The temp file is made next to the target (same filesystem, so ``rename`` is atomic), gets
    the target's permissions, is flushed to disk, then renamed over it.
    """
    target = Path(path)
    owner: tuple[int, int] | None = None
    try:
        st = target.stat()
        mode = st.st_mode & 0o7777
        owner = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if owner is not None and os.geteuid() == 0 and owner != (0, 0):
            # root editing the service's files (e.g. `webbo user set-password` run with sudo)
            # must leave them readable by the service user.
            os.chown(tmp, *owner)
        os.replace(tmp, target)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise
    with _suppress_oserror():
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, OSError)
