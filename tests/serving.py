"""Helpers for the server's tests: seeded weights for the toy tasks (so that the server's
models and ``imgzoo.run``'s are the same), encoded test images, and a live server on a free
port of 127.0.0.1 in a thread."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from fastapi.testclient import TestClient

import imgzoo
from imgzoo import plugins
from imgzoo.serve import ServeSettings, create_app
from toy_tasks import write_registry


def write_seeded_weights(folder: Path, names: Sequence[str]) -> None:
    """Register fixed weights (a seeded init) as the default of each task in ``names``."""
    from imgzoo.weights import save_weights, state_tensors

    for name in names:
        torch.manual_seed(0)
        task = plugins.get_task_class(name)()
        tensors = {}
        for role, model in task.build_models().items():
            tensors.update(state_tensors(model, prefix=role))
        file = folder / f"{name}.safetensors"
        metadata = {"task": name, "config": task.config.model_dump(mode="json")}
        sha256 = save_weights(file, tensors, metadata=metadata)
        write_registry(folder / f"{name}.toml", name, {"seeded": (file.name, sha256)}, default="seeded")
        imgzoo.add_registry(folder / f"{name}.toml")


def encode_png(pixels: np.ndarray) -> bytes:
    """RGB(A) or gray uint8 pixels as PNG bytes."""
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes as RGB(A) or HxWx1 gray pixels, as ``imgzoo.run`` returns them for bytes."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, "not an image"
    if pixels.ndim == 2:
        return pixels[..., None]
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)


def png_bomb(side: int = 40000) -> bytes:
    """A small, valid-looking PNG whose header claims ``side``x``side`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def random_pictures(rng: np.random.Generator, sizes: Sequence[tuple[int, int]]) -> list[bytes]:
    return [encode_png(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for h, w in sizes]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """A server in processes of its own: ``command`` run with ``environment`` as a new session
    (so that closing stops the processes it starts, a Ray cluster's among them), ready once
    ``url + health`` answers 200."""

    def __init__(
        self, command: Sequence[str], environment: dict[str, str], *, url: str, health: str = "/healthz"
    ) -> None:
        import subprocess

        import httpx

        self.url = url
        self.process = subprocess.Popen(
            list(command),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        give_up = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}{health}").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > give_up:
                self.close()
                raise RuntimeError(f"the server {' '.join(command)} did not start")
            time.sleep(0.2)

    def close(self) -> None:
        import os
        import signal
        import subprocess

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still finishing requests whose clients are gone
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def local_client(app: Any, **options: Any) -> TestClient:
    """FastAPI's test client, sending ``Host: localhost`` (the server answers local names only)."""
    return TestClient(app, base_url="http://localhost", **options)


@contextmanager
def live_server(tasks: Sequence[str], settings: ServeSettings | None = None) -> Iterator[str]:
    """Serve ``tasks`` with uvicorn on a free port of 127.0.0.1; yields the base URL."""
    import uvicorn

    app = create_app(tasks, settings)
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    give_up = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > give_up:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()


@dataclass(frozen=True)
class Call:
    """One request of a load test: a task, the body, and what must come back (the result's
    pixels or float map, or None for an input the server must refuse with a 4xx)."""

    task: str
    body: bytes
    expected: np.ndarray | None


@dataclass(frozen=True)
class Answer:
    call: Call
    status: int
    content: bytes
    seconds: float


def mixed_calls(
    rng: np.random.Generator,
    tasks: Sequence[str],
    count: int,
    *,
    invalid_every: int = 5,
    sizes: Sequence[tuple[int, int]] = ((8, 8), (12, 10), (16, 16)),
) -> list[Call]:
    """``count`` requests over ``tasks`` and a few image sizes, every ``invalid_every``-th one a
    corrupt file or a decompression bomb; the expected results come from ``imgzoo.run``."""
    calls = []
    for index in range(count):
        task = tasks[index % len(tasks)]
        if index % invalid_every == invalid_every - 1:
            body = (
                png_bomb() if index % 2 else b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 64, np.uint8))
            )
            calls.append(Call(task, body, None))
            continue
        body = random_pictures(rng, [sizes[index % len(sizes)]])[0]
        calls.append(Call(task, body, np.asarray(imgzoo.run(task, body))))
    return calls


def post_image(session: Any, call: Call) -> Any:
    """A call as ``imgzoo serve`` takes it: the image as the body of ``POST /v1/tasks/TASK``."""
    return session.post(f"/v1/tasks/{call.task}", content=call.body, headers={"content-type": "image/png"})


def hammer(
    base_url: str, calls: Sequence[Call], clients: int, send: Callable[[Any, Call], Any] = post_image
) -> list[Answer]:
    """Send ``calls`` from ``clients`` threads at once (each its own connection), every call
    once, each as ``send(httpx_client, call)`` makes it; the answers in the order of ``calls``."""
    import httpx

    answers: list[Answer | None] = [None] * len(calls)
    share = [list(range(start, len(calls), clients)) for start in range(clients)]

    def client(indices: list[int]) -> None:
        with httpx.Client(base_url=base_url, timeout=120) as session:
            for index in indices:
                call = calls[index]
                began = time.perf_counter()
                response = send(session, call)
                answers[index] = Answer(
                    call, response.status_code, response.content, time.perf_counter() - began
                )

    threads = [threading.Thread(target=client, args=(indices,)) for indices in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer is not None for answer in answers), "a request got no answer"
    return [answer for answer in answers if answer is not None]


def check_answers(answers: Sequence[Answer]) -> None:
    """Every valid call answered with ``imgzoo.run``'s result, every invalid one with a 4xx."""
    for number, answer in enumerate(answers):
        call = answer.call
        if call.expected is None:
            assert 400 <= answer.status < 500, (number, answer.status, answer.content[:200])
            assert json.loads(answer.content)["error"]
            continue
        assert answer.status == 200, (number, answer.status, answer.content[:200])
        where = f"request {number} ({call.task})"
        if answer.content.startswith(b"\x93NUMPY"):
            # A float map keeps every bit of the forward pass, and a batch of several inputs may
            # sum in another order than one alone (another convolution kernel): equal to rounding.
            np.testing.assert_allclose(
                np.load(io.BytesIO(answer.content)), call.expected, atol=1e-6, err_msg=where
            )
        else:
            np.testing.assert_array_equal(decode_png(answer.content), call.expected, err_msg=where)
