"""The run's surroundings: its output folder, stop signals, deterministic kernels, the seed of
each step's randomness, and the version of the code that trained it.

Nothing here knows the loop: :class:`StopRequest` is a flag the loop reads after each step,
and the signal handler only sets it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgzoo import __version__
from imgzoo.errors import OutputError
from imgzoo.training.batches import STOP_SIGNALS

__all__ = ["StopRequest", "code_version", "deterministic_kernels", "prepare_output_dir", "step_seed"]


class StopRequest:
    """Whether the run was asked to stop after the current step, and by which signal."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: signal.Signals | None = None

    def ask(self, signum: int | None = None) -> None:
        """Ask for a stop after this step; ``signum``: the signal that asked (None: a callback)."""
        self.requested = True
        if signum is not None:
            self.signal = signal.Signals(signum)

    @contextlib.contextmanager
    def on_signals(self, *, announce: bool) -> Iterator[None]:
        """The first Ctrl-C or SIGTERM asks for a stop (said on stderr when ``announce``); a
        second stops at once. SIGTERM is how kill, systemd, docker stop, Kubernetes and batch
        schedulers stop a process, before they send SIGKILL after a grace period."""
        # Python only delivers signals to the main thread, and only it may install handlers.
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.ask(signum)
            if announce:
                again = "Ctrl-C" if signum == signal.SIGINT else "again"
                print(
                    f"\n{signal.Signals(signum).name}: stopping after this step to save a checkpoint "
                    f"({again} to quit at once)",
                    file=sys.stderr,
                )

        previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                # None: the handler was not installed from Python, and cannot be put back.
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def prepare_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` and make sure files can be written there, or raise OutputError naming it."""
    folder = Path(out_dir).expanduser()
    probe = folder / f".imgzoo-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise OutputError(
            f"cannot write to the output folder {folder}: {reason}; choose another --out", path=folder
        ) from None
    return folder


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the randomness inside one step (dropout, a GAN's noise) of one process: a
    function of these three only, so that resuming cannot shift it."""
    return int(np.random.SeedSequence((seed, 2, step, rank)).generate_state(1, np.uint64)[0] >> np.uint64(1))


@contextlib.contextmanager
def deterministic_kernels(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the duration of a run (the global flags are restored after)."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # input sizes are fixed: let cuDNN pick the fastest kernels
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]


def code_version() -> dict[str, str]:
    """imgzoo's version, and the git commit when imgzoo runs from a git checkout of itself.

    An installed imgzoo (say, in a virtual environment that lies inside another project's
    repository) records no commit: the commit of whatever repository holds it would mislead.
    """
    version = {"imgzoo": __version__}
    # A checkout holds this file as ROOT/core/imgzoo/training/environment.py, ROOT being the top
    # of the work tree.
    root = Path(__file__).resolve().parents[3]
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return version
    lines = completed.stdout.splitlines()
    if completed.returncode == 0 and len(lines) == 2 and Path(lines[0]).resolve() == root:
        version["git"] = lines[1]
    return version
