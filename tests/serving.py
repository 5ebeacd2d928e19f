"""Helpers for the server's tests: seeded weights for the toy tasks (so that the server's
models and ``imgzoo.run``'s are the same), encoded test images, and a live server on a free
port of 127.0.0.1 in a thread."""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch

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
