"""A soak of ``imgzoo serve`` with hostile clients among the valid ones (pytest-benchmark; not
part of the default run)::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_serve_soak.py -p no:cacheprovider \
        --benchmark-enable -s

The built-in colorize and edges2photo with their shipped weights, served by ``imgzoo serve`` in
its own process with a memory budget (``--max-memory-gb``) and a short ``--body-timeout``. 64
clients send 20 requests each at once (``IMGZOO_SOAK_CLIENTS`` and ``IMGZOO_SOAK_REQUESTS``
scale it down on a shared machine); every fifth request is hostile, in turn: a decompression
bomb, a corrupt file, an injected shape option (``?image_size=4096``) and a body that drips a
byte at a time. Reported: the server's RSS after a warm-up round and its peak during the soak,
against the budget; p50/p99 latency of the valid requests; how many were answered. Asserted, in
the same run: every valid request answered with ``imgzoo.run``'s result, every hostile one a 4xx
(408 for the slow bodies), none lost, and the peak within the budget over the warm-up's RSS.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

import imgzoo
from serving import ServerProcess, decode_png, free_port, png_bomb, random_pictures

TASKS = ("colorize", "edges2photo")
CLIENTS = int(os.environ.get("IMGZOO_SOAK_CLIENTS", "64"))
PER_CLIENT = int(os.environ.get("IMGZOO_SOAK_REQUESTS", "20"))
BUDGET_GB = 1.0
BODY_TIMEOUT_S = 2.0
HOSTILE = ("bomb", "corrupt", "injected", "slow")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Soaked:
    """One request of the soak: its task, what it is (``valid`` or one of :data:`HOSTILE`), the
    body, and the result it must get (None for a hostile one)."""

    task: str
    kind: str
    body: bytes
    expected: np.ndarray | None


@dataclass(frozen=True)
class Answered:
    request: Soaked
    status: int
    content: bytes
    seconds: float


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _requests(count: int) -> list[Soaked]:
    """``count`` requests over the tasks, a few pictures each (their results computed once)."""
    rng = np.random.default_rng(0)
    pictures = random_pictures(rng, [(32, 32), (24, 32), (32, 24)])
    expected = {
        (task, index): np.asarray(imgzoo.run(task, body))
        for task in TASKS
        for index, body in enumerate(pictures)
    }
    made = []
    for number in range(count):
        task, index = TASKS[number % len(TASKS)], number % len(pictures)
        if number % 5 == 4:
            kind = HOSTILE[(number // 5) % len(HOSTILE)]
            body = {
                "bomb": png_bomb(),
                "corrupt": b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 64, np.uint8)),
            }
            made.append(Soaked(task, kind, body.get(kind, pictures[index]), None))
        else:
            made.append(Soaked(task, "valid", pictures[index], expected[task, index]))
    return made


def _drip(port: int, request: Soaked) -> tuple[int, bytes]:
    """Headers and 4 bytes of the body, then a byte every 0.5 s until the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        head = (
            f"POST /v1/tasks/{request.task} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(request.body)}\r\n\r\n"
        )
        connection.sendall(head.encode() + request.body[:4])
        connection.settimeout(0.5)
        for byte in request.body[4:]:
            try:
                answer = connection.recv(4096)
                return int(answer.split(b" ")[1]), answer
            except TimeoutError:
                connection.sendall(bytes([byte]))
        return 0, b"the whole body went through"


def _send(port: int, requests: list[Soaked], clients: int) -> list[Answered]:
    answers: list[Answered | None] = [None] * len(requests)
    url = f"http://127.0.0.1:{port}"

    def client(indices: range) -> None:
        with httpx.Client(base_url=url, timeout=120) as session:
            for index in indices:
                request = requests[index]
                began = time.perf_counter()
                if request.kind == "slow":
                    status, content = _drip(port, request)
                else:
                    query = "?image_size=4096" if request.kind == "injected" else ""
                    response = session.post(
                        f"/v1/tasks/{request.task}{query}",
                        content=request.body,
                        headers={"content-type": "image/png"},
                    )
                    status, content = response.status_code, response.content
                answers[index] = Answered(request, status, content, time.perf_counter() - began)

    threads = [
        threading.Thread(target=client, args=(range(start, len(requests), clients),))
        for start in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [answer for answer in answers if answer is not None]


def test_serve_soak_with_hostile_clients(benchmark) -> None:  # type: ignore[no-untyped-def]
    requests = _requests(CLIENTS * PER_CLIENT)
    port = free_port()
    command = [sys.executable, "-m", "imgzoo.cli", "serve", *TASKS, "--port", str(port), "--queue", "1024"]
    command += ["--max-memory-gb", str(BUDGET_GB), "--body-timeout", str(BODY_TIMEOUT_S), "--timeout", "120"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("core", "plugins"))}
    server = ServerProcess(command, environment, url=f"http://127.0.0.1:{port}")
    pid = server.process.pid
    try:
        valid = [request for request in requests if request.kind == "valid"]
        _send(port, valid[: 4 * len(TASKS)], clients=len(TASKS))  # warm-up: models measured, allocator met
        start = _rss_mb(pid)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                samples.append(_rss_mb(pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.perf_counter()
        try:
            answers = benchmark.pedantic(_send, (port, requests, CLIENTS), rounds=1, iterations=1)
        finally:
            done.set()
            sampler.join()
        elapsed = time.perf_counter() - began
    finally:
        server.close()
    assert len(answers) == len(requests), "a request got no answer"
    for number, answer in enumerate(answers):
        request = answer.request
        where = (number, request.task, request.kind, answer.status, answer.content[:200])
        if request.expected is None:
            assert answer.status == 408 if request.kind == "slow" else 400 <= answer.status < 500, where
            continue
        assert answer.status == 200, where
        np.testing.assert_array_equal(decode_png(answer.content), request.expected, err_msg=str(where[:3]))
    latencies = sorted(answer.seconds for answer in answers if answer.request.kind == "valid")
    figures = {
        "clients": CLIENTS,
        "requests": len(requests),
        "answered": len(answers),
        "valid": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "seconds": elapsed,
        "rss_start_mb": start,
        "rss_peak_mb": max([start, *samples]),
        "budget_mb": BUDGET_GB * 1024,
    }
    benchmark.extra_info.update(figures)
    print("\nsoak: " + ", ".join(f"{name}={value:.1f}" for name, value in figures.items()))
    assert figures["rss_peak_mb"] - start <= figures["budget_mb"]
