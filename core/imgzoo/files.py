"""Durable file writes, shared by weights, downloads, exports, checkpoints, images and logs.

A reader never sees a half-written file: data goes to a temporary file beside the target, which
then takes the target's name in one step (:func:`replaced_atomically`, the one place that does
it): a rename that replaces what is there, or, where nothing may be replaced, a hard link that
fails if the name was taken meanwhile. ``fsync_path`` makes either survive a power cut.

Temporary files are named for the process that writes them (:func:`temporary_sibling`), so that
a later run can tell those of a killed process from those being written now, and remove them
(:func:`remove_abandoned`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "fsync_path",
    "process_exists",
    "remove_abandoned",
    "replaced_atomically",
    "temporary_sibling",
    "write_atomically",
]

_HOST = re.sub(r"[^\w-]", "_", socket.gethostname()) or "host"
_OWNED_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.(?P<pid>\d+)@(?P<host>[\w-]+)\.(?P<kind>\w+)")
# Hard links are refused by some file systems (FAT, some network and FUSE mounts) and the
# platforms without them; there a check just before the rename narrows the window instead.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV}


def temporary_sibling(target: Path, *, kind: str = "tmp") -> Path:
    """A fresh hidden name beside ``target`` (same folder, so the final rename is atomic), ending
    in ``.{kind}`` and naming this process and machine (see :func:`remove_abandoned`)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.{os.getpid()}@{_HOST}.{kind}")


def remove_abandoned(folder: Path, *, kind: str = "tmp", older_than_ns: int | None = None) -> None:
    """Delete the :func:`temporary_sibling` files of ``kind`` in ``folder`` that no process will
    finish: those of processes on this machine that are gone (killed mid-write) and, with
    ``older_than_ns``, any not written to for that long."""
    import time

    try:
        candidates = list(folder.glob(f".*.{kind}"))
    except OSError:
        return
    now = time.time_ns()
    for path in candidates:
        owner = _OWNED_NAME.fullmatch(path.name)
        if owner is None or owner["kind"] != kind:
            continue
        dead = owner["host"] == _HOST and not process_exists(int(owner["pid"]))
        if not dead and older_than_ns is not None:
            try:
                dead = now - path.stat().st_mtime_ns > older_than_ns
            except OSError:  # finished or removed meanwhile
                continue
        if dead:
            with contextlib.suppress(OSError):
                path.unlink()


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (always True where that cannot be asked)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but belongs to someone else
        return True
    return True


@contextlib.contextmanager
def replaced_atomically(
    target: Path, *, temporary: Path | None = None, replace: bool = True
) -> Iterator[Path]:
    """A temporary path beside ``target`` for the block to write the new content to.

    When the block ends, that file is flushed to disk and takes ``target``'s name in one step:
    replacing what is there, or, with ``replace=False``, only if nothing is (else
    FileExistsError, and ``target`` is left as it is, even when it appeared after the caller
    checked). When the block raises, the temporary file is removed and ``target`` left as it
    was. ``temporary`` names it (default :func:`temporary_sibling`; it must be in ``target``'s
    folder, so that the rename is atomic). Creates ``target``'s folder; a failed write raises
    OSError.
    """
    temporary = temporary or temporary_sibling(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:  # a file where the folder should be: not "the target exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target.parent)) from error
    try:
        yield temporary
        with open(temporary, "rb+") as file:  # writable: Windows cannot fsync a read-only handle
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, target)
        else:
            _link_unless_taken(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _link_unless_taken(temporary: Path, target: Path) -> None:
    """Give ``temporary``'s file the name ``target`` unless that name exists, then drop the
    temporary name; FileExistsError when it exists."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(temporary, target)
        return
    os.unlink(temporary)


def write_atomically(target: Path, content: bytes, *, replace: bool = True) -> None:
    """Write ``content`` to ``target`` through a temporary file and a rename; with
    ``replace=False``, FileExistsError when ``target`` exists. Raises OSError."""
    with replaced_atomically(target, replace=replace) as temporary:
        # os.open with 0o666 honours the umask, unlike mkstemp's private 0o600.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)


def fsync_path(path: Path) -> None:
    """Flush a file or a folder (after a rename in it) to disk; a no-op where the platform
    cannot fsync folders."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
