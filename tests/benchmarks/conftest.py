"""Fixtures shared by the benchmarks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread: figures for one core, comparable between runs on a shared machine
    (another process stalls a multi-threaded step far more than a single-threaded one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
