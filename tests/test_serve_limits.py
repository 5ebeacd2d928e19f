"""What keeps strangers from exhausting ``imgzoo serve``, and every front-end from starting a job
that cannot fit: request options allow-listed and bounded, a memory budget for every request and
batch, a deadline for slow bodies, the Host header checked, and settings refused in one line."""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import imgzoo
from imgzoo import catalogue, plugins
from imgzoo.cli import main
from imgzoo.errors import ConfigError, MemoryBudgetError, RequestError
from imgzoo.images import decode_image
from imgzoo.pipeline import Request as PipelineRequest
from imgzoo.serve import ServeSettings, create_app
from imgzoo.serve.batching import Batcher, Job, ModelWorker
from imgzoo.task import declaration_problems
from serving import encode_png, live_server, local_client, random_pictures, write_seeded_weights

PNG = {"content-type": "image/png"}


@pytest.fixture
def seeded(toy_tasks: None, tmp_path: Path) -> None:
    write_seeded_weights(tmp_path, ["invert"])


def _picture(rng: np.random.Generator, height: int = 12, width: int = 10) -> bytes:
    return random_pictures(rng, [(height, width)])[0]


# ── request options ───────────────────────────────────────────────────────────────────────
def test_a_request_sets_only_its_tasks_request_options_within_their_bounds(
    seeded: None, rng: np.random.Generator
) -> None:
    picture = _picture(rng)
    with local_client(create_app(["invert"])) as client:
        for field in ("image_size", "learning_rate"):
            refused = client.post(f"/v1/tasks/invert?{field}=64", content=picture, headers=PNG)
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert f"may not set {field!r}" in error and "may set gain, tile" in error
        over = client.post("/v1/tasks/invert?gain=1000", content=picture, headers=PNG)
        assert over.status_code == 400 and "gain" in over.json()["error"]
        allowed = client.post("/v1/tasks/invert?gain=0.5", content=picture, headers=PNG)
        assert allowed.status_code == 200, allowed.text
    # imgzoo.run may set any valid field: only a server request is held to the list.
    assert imgzoo.run("invert", picture, image_size=64).shape == (12, 10, 3)


def test_built_in_request_options_are_bounded_and_leave_the_shape_alone() -> None:
    for name in catalogue.list_tasks():
        task_class = plugins.get_task_class(name)
        assert not declaration_problems(task_class), name
        shaping = {"image_size", "ngf", "ndf", "num_downs", "disc_layers", "upsample", "max_side"}
        assert not shaping & set(task_class.request_options), name
    assert "extract_edges" in plugins.get_task_class("edges2photo").request_options


def test_an_unbounded_or_unknown_request_option_fails_its_plugin() -> None:
    from toy_tasks import InvertTask

    unbounded = type("Unbounded", (InvertTask,), {"request_options": ("image_size",)})
    unknown = type("Unknown", (InvertTask,), {"request_options": ("strength",)})
    assert (
        "'image_size' must be a bool, a Literal, or an int or float with lower and upper bounds"
        in (declaration_problems(unbounded)[0])
    )
    assert "'strength' is not a config field" in declaration_problems(unknown)[0]


# ── memory ────────────────────────────────────────────────────────────────────────────────
def test_run_refuses_a_job_that_cannot_fit_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from imgzoo import pipeline

    monkeypatch.setattr(pipeline, "memory_available", lambda: 6 * 2**30)  # a 6 GiB machine
    picture = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(MemoryBudgetError) as refused:
        imgzoo.run("colorize", picture, weights="none", image_size=8192)
    message = str(refused.value)
    assert "\n" not in message and "more than the 6.0 GiB" in message and "run at 8192x8192" in message
    assert "image_size" in message and refused.value.needed > refused.value.limit == 6 * 2**30
    (tmp_path / "x.png").write_bytes(encode_png(picture))
    out = tmp_path / "o.png"
    code = main(
        [
            "run",
            "colorize",
            str(tmp_path / "x.png"),
            "-o",
            str(out),
            "--weights",
            "none",
            "--set",
            "image_size=8192",
        ]
    )
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("imgzoo: error: task 'colorize' would need about")
    assert "Traceback" not in error and not out.exists()


def test_the_estimate_grows_with_the_pixels_the_model_sees() -> None:
    colorize = imgzoo.load("colorize", weights="none")
    small, large = colorize.memory_needed([(64, 64)]), colorize.memory_needed([(64, 64)] * 4, batch_size=4)
    assert 3.9 < large / small < 4.1  # four images at the working size, as one pass
    edges = imgzoo.load("edges2photo", weights="none", ngf=8)
    assert edges.bytes_per_pixel > 0  # measured (the task declares none)
    # Above a tile, a tiled image's forward pass is one tile's, whatever the image's size.
    tiled = edges.memory_needed([(4096, 4096)]) - 4096**2 * 64 * 2
    assert tiled == edges.memory_needed([(8192, 8192)]) - 8192**2 * 64 * 2


def test_a_request_that_cannot_fit_alone_is_413_before_decoding(
    seeded: None, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgzoo import images

    decoded: list[str] = []
    real_decode = images.decode_image
    monkeypatch.setattr(
        images, "decode_image", lambda data, source="": decoded.append(source) or real_decode(data, source)
    )
    settings = ServeSettings(max_memory_bytes=100_000)
    with local_client(create_app(["invert"], settings)) as client:
        fits = client.post("/v1/tasks/invert", content=_picture(rng, 12, 10), headers=PNG)
        assert fits.status_code == 200, fits.text
        large = client.post("/v1/tasks/invert", content=_picture(rng, 64, 64), headers=PNG)
        assert large.status_code == 413, large.text
        error = large.json()["error"]
        assert "would need about 0.6 MiB, more than the server's memory budget of 0.1 MiB" in error
        assert "--max-memory-gb" in error
        assert client.app.state.batcher.memory_held == 0  # type: ignore[attr-defined]
    assert len(decoded) == 1


def test_the_default_budget_is_half_of_the_memory_available(seeded: None) -> None:
    app = create_app(["invert"], preload=False)
    budget = app.state.settings.max_memory_bytes
    assert 0 < budget <= imgzoo.hardware.memory_available() // 2 * 1.1  # type: ignore[attr-defined]


def test_a_batch_over_the_memory_budget_is_split() -> None:
    gate, sizes = threading.Event(), []

    class Recorder:
        def run(
            self, requests: list[PipelineRequest], batch_size: int, memory_limit: int | None
        ) -> list[Any]:
            sizes.append(len(requests))
            return [request.image.stored for request in requests]

    def load() -> Any:
        gate.wait(timeout=60)
        return Recorder()

    worker = ModelWorker("recorder", load, max_batch=8, max_wait=0, memory_budget=100)
    image = decode_image(encode_png(np.zeros((4, 4, 3), np.uint8)))
    jobs = [Job(PipelineRequest(image), memory=40) for _ in range(5)]
    for job in jobs:
        worker.submit(job)
    gate.set()
    for job in jobs:
        job.future.result(timeout=30)
    worker.close()
    assert sizes == [2, 2, 1]


def test_memory_is_held_until_given_back() -> None:
    batcher = Batcher(max_batch=1, max_wait=0, queue=4, memory_budget=100)
    first = batcher.hold_memory(60, wait=0)
    with pytest.raises(RequestError) as busy:
        batcher.hold_memory(60, wait=0.05)
    assert busy.value.status == 503 and "memory budget" in str(busy.value)
    threading.Timer(0.05, first.release).start()
    batcher.hold_memory(60, wait=10).release()  # waits for the first to give its memory back
    assert batcher.memory_held == 0
    with pytest.raises(MemoryBudgetError):
        batcher.hold_memory(101, wait=10)


# ── slow clients ──────────────────────────────────────────────────────────────────────────
def _drip(host: str, port: int, answers: list[bytes]) -> None:
    """A client that sends its headers and 4 bytes of a 1000-byte body, then 1 byte every 0.3 s."""
    with socket.create_connection((host, port), timeout=20) as connection:
        connection.sendall(
            b"POST /v1/tasks/invert HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 1000\r\n\r\n\x89PNG"
        )
        connection.settimeout(0.3)
        answer = b""
        for _ in range(60):
            try:
                answer = connection.recv(4096)
                break
            except TimeoutError:
                connection.sendall(b"\x00")
        answers.append(answer)


def test_a_slow_body_gets_408_and_frees_its_place_while_others_get_200(
    seeded: None, rng: np.random.Generator
) -> None:
    import httpx

    settings = ServeSettings(queue=3, body_timeout=1.0)
    with live_server(["invert"], settings) as url:
        host, port = url.removeprefix("http://").split(":")
        drips: list[bytes] = []
        threads = [threading.Thread(target=_drip, args=(host, int(port), drips)) for _ in range(2)]
        for thread in threads:
            thread.start()
        statuses = []
        with httpx.Client(base_url=url, timeout=30) as client:
            began = time.monotonic()
            while any(thread.is_alive() for thread in threads) and time.monotonic() - began < 15:
                statuses.append(
                    client.post("/v1/tasks/invert", content=_picture(rng), headers=PNG).status_code
                )
                time.sleep(0.1)
            for thread in threads:
                thread.join()
            # Every place is free again: as many requests at once as the queue holds all get 200.
            burst: list[int] = []
            senders = [
                threading.Thread(
                    target=lambda: burst.append(
                        httpx.post(f"{url}/v1/tasks/invert", content=_picture(rng), headers=PNG).status_code
                    )
                )
                for _ in range(3)
            ]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
    assert len(drips) == 2 and all(answer.startswith(b"HTTP/1.1 408") for answer in drips), drips
    assert statuses and set(statuses) == {200}
    assert burst == [200, 200, 200]


# ── hosts ─────────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    ("host", "allowed", "status"),
    [
        ("attacker.example", (), 400),
        ("attacker.example:8000", (), 400),
        ("localhost:8000", (), 200),
        ("127.0.0.1", (), 200),
        ("[::1]:8000", (), 200),
        ("api.example.org", ("*.example.org",), 200),
        ("example.org.attacker.example", ("*.example.org",), 400),
        ("anything", ("*",), 200),
    ],
)
def test_only_allowed_hosts_are_answered(
    toy_tasks: None, host: str, allowed: tuple[str, ...], status: int
) -> None:
    with local_client(create_app(["invert"], ServeSettings(allowed_hosts=allowed), preload=False)) as client:
        response = client.get("/healthz", headers={"host": host})
    assert response.status_code == status
    if status == 400:
        assert "--allowed-hosts" in response.json()["error"]


# ── settings ──────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    "flags",
    [
        ["--port", "99999"],
        ["--port", "-1"],
        ["--max-request-mb", "nan"],
        ["--max-request-mb", "inf"],
        ["--max-wait-ms", "nan"],
        ["--body-timeout", "inf"],
        ["--max-memory-gb", "nan"],
    ],
)
def test_bad_serve_flags_are_argument_errors(
    toy_tasks: None, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "invert", *flags])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and f"argument {flags[0]}: must be" in error and "Traceback" not in error


def test_settings_refuse_nan_and_infinity() -> None:
    with pytest.raises(ConfigError) as bad:
        ServeSettings(max_wait_ms=math.nan, timeout=math.inf, max_memory_bytes=0, body_timeout=-1).check()
    assert [field for field, _ in bad.value.errors] == [
        "--max-wait-ms",
        "--timeout",
        "--body-timeout",
        "--max-memory-gb",
    ]


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("bad\x00host", "--host 'bad\\x00host': cannot listen there"),
        ("192.0.2.1", "--host '192.0.2.1': cannot listen on"),
    ],
)
def test_a_bad_host_is_one_line(
    toy_tasks: None, host: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "invert", "--host", host, "--port", "0"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"imgzoo: error: {said}") and error.count("\n") == 1


def test_a_port_in_use_is_one_line(toy_tasks: None, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "invert", "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert error == (
        f"imgzoo: error: --port {port}: cannot listen on 127.0.0.1:{port}: it is in use (another server?): "
        "choose another --port\n"
    )
