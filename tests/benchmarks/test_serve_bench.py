"""``imgzoo serve`` under load (pytest-benchmark; not part of the default run)::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_serve_bench.py -p no:cacheprovider \
        --benchmark-enable -s

The built-in colorize and edges2photo with their shipped weights, served by ``imgzoo serve`` in
its own process; 32 clients send 20 requests each at once, 32x32 pictures of three sizes with
every fifth one a corrupt file or a decompression bomb. Reported, with dynamic batching off
(``--max-batch 1``) and on (``--max-batch 8``): p50/p99 latency, requests per second, and the
throughput of a single-threaded ``imgzoo.run()`` loop over the same valid images in this process;
the server's RSS after a warm-up round (the same requests) and its peak during the measured one.
Asserted, against figures of the same run: every request answered right, and the server's
memory flat under load (its peak within a tenth of what the warm-up left). The latencies and
rates are reported, with no target.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import imgzoo
from serving import Answer, ServerProcess, free_port, hammer, mixed_calls

TASKS = ("colorize", "edges2photo")
CLIENTS, PER_CLIENT = 32, 20
REPO = Path(__file__).resolve().parents[2]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _start_server(max_batch: int) -> ServerProcess:
    port = free_port()
    command = [sys.executable, "-m", "imgzoo.cli", "serve", *TASKS, "--port", str(port)]
    command += ["--max-batch", str(max_batch), "--max-wait-ms", "5", "--queue", "1024"]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("core", "plugins")),
    }
    return ServerProcess(command, environment, url=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def calls() -> list:  # type: ignore[type-arg]
    return mixed_calls(
        np.random.default_rng(0), TASKS, CLIENTS * PER_CLIENT, sizes=[(32, 32), (24, 32), (32, 24)]
    )


@pytest.fixture(scope="module")
def run_loop_rate(calls: list) -> float:  # type: ignore[type-arg]
    valid = [call for call in calls if call.expected is not None]
    for task in TASKS:  # load outside the timing
        imgzoo.run(task, valid[0].body)
    began = time.perf_counter()
    for call in valid:
        imgzoo.run(call.task, call.body)
    return len(valid) / (time.perf_counter() - began)


@pytest.mark.parametrize("max_batch", [1, 8], ids=["batching-off", "batching-on"])
def test_serve_under_load(benchmark, calls, run_loop_rate, max_batch: int) -> None:  # type: ignore[no-untyped-def]
    server = _start_server(max_batch)
    try:
        # Warm-up: one whole round, so that every batch shape has met the allocator once.
        hammer(server.url, calls, clients=CLIENTS)
        settled = _rss_mb(server.process.pid)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                samples.append(_rss_mb(server.process.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.perf_counter()
        answers: list[Answer] = benchmark.pedantic(
            hammer, (server.url, calls, CLIENTS), rounds=1, iterations=1
        )
        elapsed = time.perf_counter() - began
        done.set()
        sampler.join()
        after = _rss_mb(server.process.pid)
    finally:
        server.close()
    assert len(answers) == len(calls)
    for answer in answers:
        ok = 200 if answer.call.expected is not None else 400
        assert answer.status == ok, answer.content[:200]
    latencies = sorted(answer.seconds for answer in answers if answer.call.expected is not None)
    figures = {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "requests_per_s": len(answers) / elapsed,
        "valid_per_s": len(latencies) / elapsed,
        "run_loop_per_s": run_loop_rate,
        "rss_after_warmup_mb": settled,
        "rss_peak_mb": max([settled, *samples]),
        "rss_after_mb": after,
    }
    benchmark.extra_info.update(figures)
    print(f"\nmax_batch={max_batch}: " + ", ".join(f"{name}={value:.1f}" for name, value in figures.items()))
    # Flat: the load adds no more than a tenth to what the warm-up left.
    assert figures["rss_peak_mb"] < 1.1 * settled + 20
