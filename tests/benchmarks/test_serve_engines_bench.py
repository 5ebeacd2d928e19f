"""``imgzoo serve`` beside Ray Serve and LitServe under load (pytest-benchmark; not part of the
default run)::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_serve_engines_bench.py -p no:cacheprovider \
        --benchmark-enable -s

colorize with its shipped weights, each server in processes of its own, dynamic batching of up
to 8 requests waiting at most 5 ms: ``imgzoo serve``; ``imgzoo serve --engine ray`` with one and
with two replicas (the same application, each replica batching its own); and LitServe serving the
same :meth:`Pipeline.run` with its own batching (``litserve_peer.py``, which takes the image
base64-encoded in JSON, as LitServe reads JSON or forms). 16 clients send 8 requests each at
once, 32x32 pictures of three sizes, after a warm-up round of the same requests. Reported: p50
and p99 latency, requests/s, and each server's requests/s and p99 as ratios to ``imgzoo serve``'s
of the same run. Asserted: every answer is ``imgzoo.run``'s result.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving import Answer, Call, ServerProcess, decode_png, free_port, hammer, mixed_calls, post_image

TASK = "colorize"
CLIENTS, PER_CLIENT = 16, 8
REPO = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("core", "plugins")),
    "OMP_NUM_THREADS": "1",
}
BATCHING = ["--max-batch", "8", "--max-wait-ms", "5", "--queue", "1024"]


def _post_json(session: Any, call: Call) -> Any:
    return session.post("/predict", json={"image": base64.b64encode(call.body).decode()})


def _litserve_pixels(content: bytes) -> np.ndarray:
    return decode_png(base64.b64decode(json.loads(content)["image"]))


SERVERS: dict[str, tuple[Callable[[int], list[str]], str, Callable[[Any, Call], Any]]] = {
    "imgzoo": (
        lambda port: ["-m", "imgzoo.cli", "serve", TASK, "--port", str(port), *BATCHING],
        "/healthz",
        post_image,
    ),
    "ray-1": (
        lambda port: ["-m", "imgzoo.cli", "serve", TASK, "--port", str(port), *BATCHING, "--engine", "ray"],
        "/healthz",
        post_image,
    ),
    "ray-2": (
        lambda port: [
            *["-m", "imgzoo.cli", "serve", TASK, "--port", str(port), *BATCHING],
            *["--engine", "ray", "--replicas", "2"],
        ],
        "/healthz",
        post_image,
    ),
    "litserve": (
        lambda port: [str(Path(__file__).with_name("litserve_peer.py")), TASK, str(port), "8", "5"],
        "/health",
        _post_json,
    ),
}


def _start_server(name: str) -> ServerProcess:
    arguments, health, _ = SERVERS[name]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return ServerProcess([sys.executable, *arguments(port)], ENVIRONMENT, url=url, health=health)


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    every = mixed_calls(
        np.random.default_rng(0), [TASK], CLIENTS * PER_CLIENT, sizes=[(32, 32), (24, 32), (32, 24)]
    )
    return [call for call in every if call.expected is not None]  # LitServe's peer refuses no bombs


def _load(name: str, calls: list[Call]) -> dict[str, float]:
    send = SERVERS[name][2]
    server = _start_server(name)
    try:
        hammer(server.url, calls, CLIENTS, send)  # warm-up
        began = time.perf_counter()
        answers: list[Answer] = hammer(server.url, calls, CLIENTS, send)
        elapsed = time.perf_counter() - began
    finally:
        server.close()
    for answer in answers:
        assert answer.status == 200, (name, answer.content[:200])
        pixels = _litserve_pixels(answer.content) if name == "litserve" else decode_png(answer.content)
        np.testing.assert_array_equal(pixels, answer.call.expected, err_msg=name)
    latencies = sorted(answer.seconds for answer in answers)
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "requests_per_s": len(answers) / elapsed,
    }


def test_serving_engines_under_load(benchmark, calls: list[Call]) -> None:  # type: ignore[no-untyped-def]
    base = benchmark.pedantic(_load, ("imgzoo", calls), rounds=1, iterations=1)
    for name in SERVERS:
        measured = base if name == "imgzoo" else _load(name, calls)
        measured["rate_ratio"] = measured["requests_per_s"] / base["requests_per_s"]
        measured["p99_ratio"] = measured["p99_ms"] / base["p99_ms"]
        benchmark.extra_info.update({f"{name}_{key}": value for key, value in measured.items()})
        print(f"\n{name}: " + ", ".join(f"{key}={value:.2f}" for key, value in measured.items()), flush=True)
