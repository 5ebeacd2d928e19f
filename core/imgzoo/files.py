"""Durable file writes, shared by weights, downloads, exports, checkpoints, images and logs.

A reader never sees a half-written file: data goes to a temporary file beside the target, which
then replaces it in one rename (:func:`replaced_atomically`, the one place that does it).
``fsync_path`` makes such a rename survive a power cut.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fsync_path", "replaced_atomically", "temporary_sibling", "write_atomically"]


def temporary_sibling(target: Path) -> Path:
    """A fresh hidden name beside ``target`` (same folder, so the final rename is atomic)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def replaced_atomically(target: Path, *, temporary: Path | None = None) -> Iterator[Path]:
    """A temporary path beside ``target`` for the block to write the new content to.

    When the block ends, that file is flushed to disk and replaces ``target`` in one rename; when
    the block raises, it is removed and ``target`` is left as it was. ``temporary`` names it
    (default :func:`temporary_sibling`; it must be in ``target``'s folder, so that the rename is
    atomic). Creates ``target``'s folder; a failed write raises OSError.
    """
    temporary = temporary or temporary_sibling(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield temporary
        with open(temporary, "rb+") as file:  # writable: Windows cannot fsync a read-only handle
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_atomically(target: Path, content: bytes) -> None:
    """Write ``content`` to ``target`` through a temporary file and a rename. Raises OSError."""
    with replaced_atomically(target) as temporary:
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
