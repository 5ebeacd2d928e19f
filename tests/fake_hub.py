"""A Hugging Face cache laid out by hand, as huggingface_hub keeps its downloads, for the tests of
``hf://`` weights (the network is never used)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

COMMIT_1, COMMIT_2 = "1" * 40, "2" * 40


def put_in_hub_cache(
    cache: Path,
    repo_id: str,
    path: str,
    file: Path,
    *,
    commit: str = COMMIT_1,
    refs: tuple[str, ...] = ("main",),
) -> None:
    """Lay ``file`` out as huggingface_hub's cache keeps a download of ``repo_id``'s ``path`` at
    ``commit``: the content under ``blobs/`` named by its sha256, linked from ``snapshots/COMMIT/PATH``,
    and each ref in ``refs/`` naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(file.read_bytes())
    snapshot = repo / "snapshots" / commit / path
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.unlink(missing_ok=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
