"""One training run per output folder.

Two runs writing the same checkpoints and ``metrics.jsonl`` would corrupt each other's state,
so a run holds an operating-system lock on ``OUT/train.lock`` while it trains. The system drops
that lock when the process ends, however it ends: a run that was killed leaves the file
behind, but nothing that blocks the next run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from imgzoo.errors import OutputError

__all__ = ["LOCK_FILE", "lock_run_folder"]

LOCK_FILE = "train.lock"


@contextlib.contextmanager
def lock_run_folder(out_dir: Path) -> Iterator[None]:
    """Hold the lock of ``out_dir`` (an existing folder) for the body of the ``with``, or raise
    OutputError naming the folder at once if another run holds it."""
    path = out_dir / LOCK_FILE
    # "a+b" creates the file without truncating it: the holder's pid stays readable to the loser.
    with open(path, "a+b") as file:
        if not _try_lock(file, path):
            raise OutputError(
                f"{out_dir} is in use by another training run{_holder(path)}: wait for it to end "
                "(or stop it, then continue it with --resume), or choose another --out",
                path=out_dir,
            )
        try:
            file.truncate(0)
            file.write(f"{os.getpid()}\n".encode())
            file.flush()
            yield
        finally:
            # Unlock explicitly rather than by closing: forked loader workers share the open
            # file, and would otherwise keep the lock until they exit.
            with contextlib.suppress(OSError):  # a file system without locks
                _unlock(file)


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except OSError:  # Windows forbids reading a locked region
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


if sys.platform == "win32":
    import msvcrt

    def _try_lock(file: BinaryIO, path: Path) -> bool:
        file.seek(0)
        try:
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(file: BinaryIO) -> None:
        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(file: BinaryIO, path: Path) -> bool:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:
            # Some network file systems have no locks: training there is still better than refusing.
            warnings.warn(
                f"cannot lock {path} ({error.strerror}): nothing stops a second run from using this folder",
                stacklevel=4,
            )
        return True

    def _unlock(file: BinaryIO) -> None:
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
