"""``imgzoo serve``: the HTTP API's results, batching, limits and errors, through FastAPI's
test client (the load and browser tests run a real server)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import Field, model_validator

import imgzoo
from imgzoo.cli import main
from imgzoo.errors import ArgumentError, ConfigError, RequestError, TilingError
from imgzoo.pipeline import Request as PipelineRequest
from imgzoo.serve import ServeSettings, create_app
from imgzoo.serve.app import choose_format, status_for
from imgzoo.serve.batching import Batcher, Job
from serving import (
    decode_png,
    encode_png,
    free_port,
    local_client,
    png_bomb,
    random_pictures,
    write_seeded_weights,
)
from toy_tasks import InvertTask, declare, write_registry

TASKS = ("invert", "toy-upscale", "toy-depth", "toy-inpaint")


@pytest.fixture
def seeded(toy_tasks: None, contract_tasks: None, tmp_path: Path) -> None:
    write_seeded_weights(tmp_path, TASKS)


@pytest.fixture
def client(seeded: None) -> Iterator[TestClient]:
    with local_client(create_app(TASKS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ray_served(ray_cluster: None) -> Iterator[str]:
    """The server's application serving TASKS on Ray Serve (one replica, on the session's local
    cluster, whose workers load the same seeded weights); yields its base URL."""
    from ray import serve

    from imgzoo.integrations.ray import serve_application
    from ray_workers import toy_tasks_registered

    with toy_tasks_registered():
        application = serve_application(TASKS, ServeSettings(), replicas=1)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(application, name="imgzoo", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(params=["uvicorn", "ray-serve"])
def contract_client(request: pytest.FixtureRequest, seeded: None) -> Iterator[Any]:
    """A client of the server serving TASKS: in-process, and deployed on Ray Serve. The contract
    tests take this one: the same answers whatever runs the application."""
    if request.param == "uvicorn":
        with local_client(create_app(TASKS)) as test_client:
            yield test_client
        return
    import httpx

    with httpx.Client(base_url=request.getfixturevalue("ray_served"), timeout=120) as ray_client:
        yield ray_client


def _picture(rng: np.random.Generator, height: int = 12, width: int = 10) -> bytes:
    return random_pictures(rng, [(height, width)])[0]


def test_tasks_are_the_catalogue_of_imgzoo_list(
    toy_tasks: None, contract_tasks: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    with local_client(create_app()) as everything:
        assert everything.get("/v1/tasks").json() == listed
        assert everything.get("/healthz").json() == {"status": "ok", "tasks": [t["name"] for t in listed]}
    inpaint = next(entry for entry in listed if entry["name"] == "toy-inpaint")
    assert inpaint["inputs"][0]["name"] == "mask" and inpaint["output_kind"] == "image"


@pytest.mark.parametrize("max_batch", [1, 8], ids=["batching-off", "batching-on"])
def test_results_equal_run(seeded: None, rng: np.random.Generator, max_batch: int) -> None:
    picture = _picture(rng)
    mask = encode_png((rng.random((12, 10)) < 0.3).astype(np.uint8) * 255)
    with local_client(create_app(TASKS, ServeSettings(max_batch=max_batch))) as client:
        _check_results_equal_run(client, picture, mask)


def test_results_on_ray_serve_equal_run(ray_served: str, seeded: None, rng: np.random.Generator) -> None:
    import httpx

    mask = encode_png((rng.random((12, 10)) < 0.3).astype(np.uint8) * 255)
    with httpx.Client(base_url=ray_served, timeout=120) as client:
        _check_results_equal_run(client, _picture(rng), mask)


def _check_results_equal_run(client: Any, picture: bytes, mask: bytes) -> None:
    """Each of TASKS served gives what ``imgzoo.run`` gives: an image, a float map, and an image
    made with a named input."""
    for task in ("invert", "toy-upscale"):
        response = client.post(f"/v1/tasks/{task}", content=picture, headers={"content-type": "image/png"})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(decode_png(response.content), imgzoo.run(task, picture))
    depth = client.post("/v1/tasks/toy-depth", content=picture, headers={"content-type": "image/png"})
    assert depth.headers["content-type"] == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(depth.content)), imgzoo.run("toy-depth", picture))
    filled = client.post(
        "/v1/tasks/toy-inpaint", files={"image": ("a.png", picture), "mask": ("m.png", mask)}
    )
    assert filled.status_code == 200, filled.text
    expected = imgzoo.run("toy-inpaint", picture, mask=mask)
    np.testing.assert_array_equal(decode_png(filled.content), expected)


def test_options_come_as_query_parameters_or_form_fields(
    contract_client: Any, rng: np.random.Generator
) -> None:
    picture = _picture(rng)
    expected = imgzoo.run("invert", picture, gain=0.5)
    by_query = contract_client.post(
        "/v1/tasks/invert?gain=0.5", content=picture, headers={"content-type": "image/png"}
    )
    by_form = contract_client.post(
        "/v1/tasks/invert", files={"image": ("a.png", picture)}, data={"gain": "0.5"}
    )
    for response in (by_query, by_form):
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(decode_png(response.content), expected)
    assert not np.array_equal(expected, imgzoo.run("invert", picture))


def test_concurrent_requests_of_one_size_run_as_one_batch(seeded: None, rng: np.random.Generator) -> None:
    pictures = random_pictures(rng, [(8, 8)] * 4 + [(6, 9)] * 2)
    # A long wait, so the batches are decided by their size alone: four of 8x8, two of 6x9.
    settings = ServeSettings(max_batch=4, max_wait_ms=3000)
    with local_client(create_app(["invert"], settings)) as client:
        answers: dict[int, Any] = {}

        def post(index: int) -> None:
            answers[index] = client.post(
                "/v1/tasks/invert", content=pictures[index], headers={"content-type": "image/png"}
            )

        threads = [threading.Thread(target=post, args=(index,)) for index in range(len(pictures))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.app.state.batcher.batches_run == 2  # type: ignore[attr-defined]
    for index, picture in enumerate(pictures):
        np.testing.assert_array_equal(decode_png(answers[index].content), imgzoo.run("invert", picture))


def test_output_formats(contract_client: Any, rng: np.random.Generator) -> None:
    picture = _picture(rng)
    headers = {"content-type": "image/png"}
    as_jpeg = contract_client.post("/v1/tasks/invert?format=jpg", content=picture, headers=headers)
    assert as_jpeg.headers["content-type"] == "image/jpeg" and as_jpeg.content.startswith(b"\xff\xd8")
    by_accept = contract_client.post(
        "/v1/tasks/invert", content=picture, headers={**headers, "accept": "image/webp"}
    )
    assert by_accept.headers["content-type"] == "image/webp" and by_accept.content[8:12] == b"WEBP"
    as_array = contract_client.post("/v1/tasks/invert?format=npy", content=picture, headers=headers)
    np.testing.assert_array_equal(np.load(io.BytesIO(as_array.content)), imgzoo.run("invert", picture))
    assert choose_format(None, "text/html;q=0.9, image/png;q=0.1, */*;q=0", "image") == "png"
    assert choose_format(None, "application/x-npy, */*", "map") == "npy"


BAD_REQUESTS = {
    "unknown task": ("/v1/tasks/nosuch", {"content": b"x", "headers": {"content-type": "image/png"}}, 404),
    "wrong content type": (
        "/v1/tasks/invert",
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        415,
    ),
    "no content type": ("/v1/tasks/invert", {"content": b"hello"}, 415),
    "corrupt file": (
        "/v1/tasks/invert",
        {"content": b"\x89PNG\r\n\x1a\nbroken" * 10, "headers": {"content-type": "image/png"}},
        400,
    ),
    "not an image": (
        "/v1/tasks/invert",
        {"content": b"GIF? no", "headers": {"content-type": "image/gif"}},
        400,
    ),
    "empty body": ("/v1/tasks/invert", {"content": b"", "headers": {"content-type": "image/png"}}, 400),
    "bomb": ("/v1/tasks/invert", {"content": png_bomb(), "headers": {"content-type": "image/png"}}, 413),
    "missing required input": ("/v1/tasks/toy-inpaint", {"files": {"image": ("a.png", "PICTURE")}}, 400),
    "unknown input": (
        "/v1/tasks/invert",
        {"files": {"image": ("a.png", "PICTURE"), "mask": ("m.png", "PICTURE")}},
        400,
    ),
    "input as text": (
        "/v1/tasks/toy-inpaint",
        {"files": {"image": ("a.png", "PICTURE")}, "data": {"mask": "1"}},
        400,
    ),
    "no image part": ("/v1/tasks/invert", {"files": {"picture": ("a.png", "PICTURE")}}, 400),
    "unknown option": ("/v1/tasks/invert?strength=2", {"files": {"image": ("a.png", "PICTURE")}}, 400),
    "invalid option value": ("/v1/tasks/invert?gain=-1", {"files": {"image": ("a.png", "PICTURE")}}, 400),
    "unknown format": ("/v1/tasks/invert?format=gif", {"files": {"image": ("a.png", "PICTURE")}}, 400),
    "png of a float map": ("/v1/tasks/toy-depth?format=png", {"files": {"image": ("a.png", "PICTURE")}}, 406),
    "unacceptable": (
        "/v1/tasks/invert",
        {"files": {"image": ("a.png", "PICTURE")}, "headers": {"accept": "text/html"}},
        406,
    ),
    "broken multipart": (
        "/v1/tasks/invert",
        {"content": b"--x\r\nnonsense", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        400,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_are_4xx_with_the_error(
    contract_client: Any, rng: np.random.Generator, case: str
) -> None:
    path, arguments, status = BAD_REQUESTS[case]
    picture = _picture(rng)
    if "files" in arguments:
        arguments = {
            **arguments,
            "files": {name: (file, picture) for name, (file, _) in arguments["files"].items()},
        }
    response = contract_client.post(path, **arguments)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and error


def test_error_messages_say_what_to_do(
    client: TestClient, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = client.post("/v1/tasks/invert", content=png_bomb(), headers={"content-type": "image/png"})
    assert "over the server's limit" in bomb.json()["error"] and "--max-pixels" in bomb.json()["error"]
    monkeypatch.setenv("IMGZOO_MAX_PIXELS", "100")  # the decoder's own guard, below the server's
    small_bomb = client.post("/v1/tasks/invert", content=png_bomb(20), headers={"content-type": "image/png"})
    assert small_bomb.status_code == 400 and "IMGZOO_MAX_PIXELS" in small_bomb.json()["error"]
    monkeypatch.delenv("IMGZOO_MAX_PIXELS")
    missing = client.post("/v1/tasks/toy-inpaint", files={"image": ("a.png", _picture(rng))})
    assert "needs input 'mask'" in missing.json()["error"]
    unknown = client.post("/v1/tasks/invertt", content=b"x", headers={"content-type": "image/png"})
    assert "did you mean 'invert'" in unknown.json()["error"]
    option = client.post("/v1/tasks/invert?strength=2", files={"image": ("a.png", _picture(rng))})
    assert "strength" in option.json()["error"] and "unknown field" in option.json()["error"]


def test_a_request_over_the_size_limit_is_413(seeded: None, rng: np.random.Generator) -> None:
    picture = _picture(rng, 64, 64)
    with local_client(create_app(["invert"], ServeSettings(max_request_bytes=len(picture) - 1))) as client:
        response = client.post("/v1/tasks/invert", content=picture, headers={"content-type": "image/png"})
        assert response.status_code == 413 and "limit" in response.json()["error"]


@pytest.fixture
def slow_loading(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Model loading waits until the returned event is set, so requests stay queued."""
    from imgzoo import pipeline

    release = threading.Event()
    real_load = pipeline.load

    def load(*args: Any, **kwargs: Any) -> Any:
        release.wait(timeout=60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load", load)
    yield release
    release.set()


def test_a_full_queue_answers_503_with_retry_after(
    seeded: None, slow_loading: threading.Event, rng: np.random.Generator
) -> None:
    picture = _picture(rng)
    app = create_app(["invert"], ServeSettings(queue=1), preload=False)
    with local_client(app) as client:
        first: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: first.update(
                response=client.post(
                    "/v1/tasks/invert", content=picture, headers={"content-type": "image/png"}
                )
            )
        )
        thread.start()
        while app.state.batcher.in_flight < 1:
            threading.Event().wait(0.01)
        refused = client.post("/v1/tasks/invert", content=picture, headers={"content-type": "image/png"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["error"]
        slow_loading.set()
        thread.join()
        assert first["response"].status_code == 200
        np.testing.assert_array_equal(decode_png(first["response"].content), imgzoo.run("invert", picture))


def test_a_missed_deadline_answers_504(
    seeded: None, slow_loading: threading.Event, rng: np.random.Generator
) -> None:
    app = create_app(["invert"], ServeSettings(timeout=0.2), preload=False)
    with local_client(app) as client:
        response = client.post(
            "/v1/tasks/invert", content=_picture(rng), headers={"content-type": "image/png"}
        )
        assert response.status_code == 504 and "timeout" in response.json()["error"]
        assert app.state.batcher.in_flight == 0  # the abandoned job gave its place back
        (worker,) = app.state.batcher.workers
        assert worker.idle  # and left its worker's queue, with its image


def test_a_cancelled_job_is_not_run() -> None:
    gate = threading.Event()
    pipeline_calls: list[int] = []

    class Recorder:
        def run(
            self, requests: list[PipelineRequest], batch_size: int, memory_limit: int | None = None
        ) -> list[np.ndarray]:
            pipeline_calls.append(len(requests))
            return [request.image.stored for request in requests]

    def load() -> Any:
        gate.wait(timeout=60)
        return Recorder()

    from imgzoo.images import decode_image

    batcher = Batcher(max_batch=4, max_wait=0, queue=2)
    worker = batcher.worker("recorder", load)
    image = decode_image(encode_png(np.zeros((4, 4, 3), np.uint8)))
    kept, dropped, refused = (Job(PipelineRequest(image)) for _ in range(3))
    batcher.submit(worker, kept)
    batcher.submit(worker, dropped)
    with pytest.raises(RequestError) as full:
        batcher.submit(worker, refused)
    assert full.value.status == 503
    dropped.future.cancel()
    gate.set()
    assert kept.future.result(timeout=30).shape == (4, 4, 3)
    batcher.close()
    assert pipeline_calls == [1]


def test_the_onnxruntime_backend_serves_what_run_gives(seeded: None, rng: np.random.Generator) -> None:
    picture = _picture(rng)
    with local_client(create_app(["invert"], ServeSettings(backend="onnxruntime"))) as client:
        response = client.post("/v1/tasks/invert", content=picture, headers={"content-type": "image/png"})
        assert response.status_code == 200, response.text
    served = decode_png(response.content).astype(int)
    expected = imgzoo.run("invert", picture, backend="onnxruntime").astype(int)
    assert np.abs(served - expected).max() == 0
    assert np.abs(served - imgzoo.run("invert", picture).astype(int)).max() <= 1  # torch, to rounding


def test_pages_are_served_without_internet_assets(contract_client: Any) -> None:
    for path in ("/", "/docs", "/static/app.js", "/static/style.css"):
        response = contract_client.get(path)
        assert response.status_code == 200, path
        assert "http://" not in response.text and "https://" not in response.text, path
    assert "/v1/tasks/{task}" in contract_client.get("/openapi.json").json()["paths"]
    assert contract_client.get("/redoc").status_code == 404
    assert contract_client.get("/static/../app.py").status_code == 404


def test_cli_serve_binds_localhost_and_passes_settings(seeded: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.update(app=app, **kwargs))
    assert main(["serve", "invert", "--max-batch", "3", "--max-wait-ms", "7", "--queue", "9"]) == 0
    assert started["host"] == "127.0.0.1" and started["port"] == 8000
    settings = started["app"].state.settings
    assert (settings.max_batch, settings.max_wait_ms, settings.queue, settings.backend) == (
        3,
        7.0,
        9,
        "torch",
    )
    assert (settings.max_pixels, settings.max_models) == (4096 * 4096, 8)
    assert main(["serve", "invert", "--max-pixels", "1000", "--max-models", "2"]) == 0
    settings = started["app"].state.settings
    assert (settings.max_pixels, settings.max_models) == (1000, 2)
    assert started["app"].state.batcher.max_models == 2


def test_cli_serve_errors_are_one_line(
    toy_tasks: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "invertt"]) == 1
    assert capsys.readouterr().err.strip().startswith("imgzoo: error: unknown task 'invertt'")
    assert main(["serve", "invert", "--max-batch", "0"]) == 1
    assert "--max-batch: must be at least 1" in capsys.readouterr().err
    assert main(["serve", "invert", "--max-request-mb", "0"]) == 1
    assert "--max-request-mb: must be more than 0, got 0" in capsys.readouterr().err
    assert main(["serve", "invert", "--backend", "tensorrt"]) == 1
    assert "--backend: unknown backend 'tensorrt': use torch or onnxruntime" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve", "invert"]) == 1
    error = capsys.readouterr().err
    assert (
        error == "imgzoo: error: fastapi is not installed (for imgzoo serve): pip install 'imgzoo[serve]'\n"
    )


# ── limits, failures and errors ───────────────────────────────────────────────────────────
@pytest.fixture
def counted_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources of the images the server decodes, in order."""
    from imgzoo import images

    decoded: list[str] = []
    real_decode = images.decode_image

    def decode_image(data: bytes, source: str = "bytes") -> Any:
        decoded.append(source)
        return real_decode(data, source)

    monkeypatch.setattr(images, "decode_image", decode_image)
    return decoded


def test_a_full_queue_refuses_before_the_body_is_decoded(
    seeded: None, slow_loading: threading.Event, counted_decodes: list[str], rng: np.random.Generator
) -> None:
    picture = _picture(rng)
    app = create_app(["invert"], ServeSettings(queue=1), preload=False)
    with local_client(app) as client:
        first = threading.Thread(
            target=client.post,
            args=("/v1/tasks/invert",),
            kwargs={"content": picture, "headers": {"content-type": "image/png"}},
        )
        first.start()
        while app.state.batcher.in_flight < 1:
            threading.Event().wait(0.01)
        refused = client.post("/v1/tasks/invert", content=picture, headers={"content-type": "image/png"})
        assert refused.status_code == 503
        slow_loading.set()
        first.join()
    assert len(counted_decodes) == 1  # the first request's image only


def test_images_over_max_pixels_are_refused_from_their_header(
    seeded: None, counted_decodes: list[str], rng: np.random.Generator
) -> None:
    small, large = _picture(rng, 8, 8), _picture(rng, 12, 10)
    ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 256, (12, 10, 3), np.uint8))
    assert ok
    mask = encode_png(np.full((12, 10), 255, np.uint8))
    with local_client(create_app(["invert", "toy-inpaint"], ServeSettings(max_pixels=100))) as client:
        for body, media in ((large, "image/png"), (jpeg.tobytes(), "image/jpeg")):
            response = client.post("/v1/tasks/invert", content=body, headers={"content-type": media})
            assert response.status_code == 413, response.text
            assert (
                "10x12 = 120 pixels" in response.json()["error"]
                and "--max-pixels" in response.json()["error"]
            )
        masked = client.post(
            "/v1/tasks/toy-inpaint", files={"image": ("a.png", small), "mask": ("m.png", mask)}
        )
        assert masked.status_code == 413 and "the mask is 10x12" in masked.json()["error"]
        assert counted_decodes == []
        fits = client.post("/v1/tasks/invert", content=small, headers={"content-type": "image/png"})
        assert fits.status_code == 200
        np.testing.assert_array_equal(decode_png(fits.content), imgzoo.run("invert", small))


def test_a_cancelled_job_leaves_its_worker_at_once() -> None:
    from imgzoo.images import decode_image

    gate = threading.Event()
    batcher = Batcher(max_batch=4, max_wait=0, queue=4)
    worker = batcher.worker("waits", lambda: gate.wait(timeout=60))  # type: ignore[arg-type,return-value]
    image = decode_image(encode_png(np.zeros((4, 4, 3), np.uint8)))
    job = Job(PipelineRequest(image))
    batcher.submit(worker, job)
    assert not worker.idle and batcher.in_flight == 1
    job.future.cancel()
    assert worker.idle and batcher.in_flight == 0
    gate.set()
    batcher.close()


def test_max_models_bounds_the_models_loaded(seeded: None, rng: np.random.Generator) -> None:
    picture = _picture(rng)
    app = create_app(["invert"], ServeSettings(max_models=1), preload=False)
    with local_client(app) as client:
        for gain in (0.5, 2.0):
            response = client.post(
                f"/v1/tasks/invert?gain={gain}", content=picture, headers={"content-type": "image/png"}
            )
            assert response.status_code == 200
            np.testing.assert_array_equal(
                decode_png(response.content), imgzoo.run("invert", picture, gain=gain)
            )
        assert [worker.name for worker in app.state.batcher.workers] == ['["invert", {"gain": 2.0}]']


class WideConfig(imgzoo.TaskConfig):
    width: int = Field(4, ge=1, le=64, description="Channels between the two convolutions.")
    multiple: int = Field(1, ge=1, description="What the width must be a multiple of.")

    @model_validator(mode="after")
    def _width_is_a_multiple(self) -> WideConfig:
        if self.width % self.multiple:
            raise ValueError(f"width {self.width} is not a multiple of {self.multiple}")
        return self


class WideTask(InvertTask):
    """Invert through a hidden layer whose width is a config field: options change its shape."""

    name = "toy-wide"
    Config = WideConfig  # type: ignore[assignment]
    # A shape a request should never choose: what the server does when a task lists one anyway.
    request_options = ("width",)

    def build_models(self) -> dict[str, Any]:
        width = self.config.width  # type: ignore[attr-defined]
        return {"model": torch.nn.Sequential(torch.nn.Conv2d(3, width, 1), torch.nn.Conv2d(width, 3, 1))}

    def forward(self, models: Any, inputs: torch.Tensor) -> torch.Tensor:
        return models["model"](inputs)


@pytest.fixture
def wide_task(tmp_path: Path) -> Iterator[Path]:
    """``toy-wide`` with default weights of width 4 (a multiple of 2); yields their folder."""
    from imgzoo.weights import save_weights, state_tensors

    class WidePlugin:
        @imgzoo.hookimpl
        def register_tasks(self, register: Any) -> None:
            register(declare(WideTask))

    name = imgzoo.register_plugin(WidePlugin(), name="toy-wide")
    task = WideTask(WideConfig(width=4, multiple=2))
    file = tmp_path / "wide.safetensors"
    metadata = {"task": "toy-wide", "config": task.config.model_dump(mode="json")}
    sha256 = save_weights(
        file, state_tensors(task.build_models()["model"], prefix="model"), metadata=metadata
    )
    write_registry(tmp_path / "wide.toml", "toy-wide", {"w4": (file.name, sha256)}, default="w4")
    imgzoo.add_registry(tmp_path / "wide.toml")
    yield tmp_path
    imgzoo.unregister_plugin(name)


def test_options_the_weights_do_not_fit_are_400_without_paths(
    wide_task: Path, rng: np.random.Generator
) -> None:
    picture = _picture(rng)
    app = create_app(["toy-wide"])
    with local_client(app) as client:
        loaded = [worker.name for worker in app.state.batcher.workers]
        # Checked against the weights' config (multiple=2) before any model is built.
        odd = client.post(
            "/v1/tasks/toy-wide?width=5", content=picture, headers={"content-type": "image/png"}
        )
        assert odd.status_code == 400 and "not a multiple of 2" in odd.json()["error"]
        # Valid for the config, but the weights hold another shape: the load fails.
        wider = client.post(
            "/v1/tasks/toy-wide?width=6", content=picture, headers={"content-type": "image/png"}
        )
        assert wider.status_code == 400, wider.text
        assert "width=6" in wider.json()["error"] and "do not fit" in wider.json()["error"]
        assert str(wide_task) not in wider.text and "safetensors" not in wider.text
        assert [worker.name for worker in app.state.batcher.workers] == loaded  # the failed one is gone
        same = client.post(
            "/v1/tasks/toy-wide?width=4", content=picture, headers={"content-type": "image/png"}
        )
        assert same.status_code == 200


def test_user_mistakes_are_4xx_and_failures_a_generic_500(
    seeded: None, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from imgzoo.serve import app as serve_app

    assert status_for(ArgumentError("batch_size must be at least 1", argument="batch_size")) == 400
    assert status_for(TilingError("tile 5 is too small")) == 400
    picture = _picture(rng)
    with local_client(create_app(["invert"]), raise_server_exceptions=False) as client:
        tiled = client.post(
            "/v1/tasks/invert?tile=64", content=picture, headers={"content-type": "image/png"}
        )
        assert tiled.status_code == 400 and "cannot run in tiles" in tiled.json()["error"]

        def broken_encoder(result: np.ndarray, fmt: str) -> bytes:
            raise RuntimeError("cannot write /srv/secret/scratch")

        monkeypatch.setattr(serve_app, "encode_result", broken_encoder)
        with caplog.at_level("ERROR", logger="imgzoo.serve"):
            failed = client.post("/v1/tasks/invert", content=picture, headers={"content-type": "image/png"})
        assert failed.status_code == 500 and failed.json() == {"error": "internal error"}
        assert "/srv/secret/scratch" in caplog.text and "POST /v1/tasks/invert" in caplog.text


def test_v1_tasks_names_local_weights_files_without_their_folders(
    seeded: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere" / "invert-abs.safetensors"
    outside.parent.mkdir()
    outside.write_bytes((tmp_path / "invert.safetensors").read_bytes())
    sha256 = hashlib.sha256(outside.read_bytes()).hexdigest()
    write_registry(tmp_path / "abs.toml", "invert", {"abs": (str(outside), sha256)})
    imgzoo.add_registry(tmp_path / "abs.toml")
    assert main(["list", "invert", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["weights"]["abs"]["file"] == str(outside)  # the command line shows it whole
    with local_client(create_app(["invert"])) as client:
        (served,) = client.get("/v1/tasks").json()
    assert served["weights"]["abs"]["file"] == "invert-abs.safetensors"
    assert served["weights"]["seeded"] == listed["weights"]["seeded"]  # beside the registry: as is
    assert {**served, "weights": {}} == {**listed, "weights": {}}


def test_settings_are_checked_naming_the_flags() -> None:
    with pytest.raises(ConfigError) as bad:
        ServeSettings(
            backend="tensorrt", precision="fp64", device="tpu", max_request_bytes=0, max_models=0
        ).check()
    fields = [field for field, _ in bad.value.errors]
    assert fields == ["--max-models", "--max-request-mb", "--backend", "--precision", "--device"]
    assert "unknown device 'tpu'" in str(bad.value)


def test_the_content_type_is_checked_before_the_body_is_read() -> None:
    import asyncio

    from starlette.requests import Request

    from imgzoo.serve.app import _read_request

    received: list[Any] = []

    async def receive() -> dict[str, Any]:
        received.append(True)
        return {"type": "http.request", "body": b"x" * 100, "more_body": False}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"text/plain")]}
    with pytest.raises(RequestError) as refused:
        asyncio.run(_read_request(Request(scope, receive), 2**20, "invert"))
    assert refused.value.status == 415 and received == []


def test_task_modules_are_imported_outside_the_event_loop(
    seeded: None, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from imgzoo import plugins

    app = create_app(["invert"])
    in_loop: list[bool] = []
    real = plugins.get_task_class

    def get_task_class(name: str) -> Any:
        try:
            asyncio.get_running_loop()
            in_loop.append(True)
        except RuntimeError:
            in_loop.append(False)
        return real(name)

    monkeypatch.setattr(plugins, "get_task_class", get_task_class)
    with local_client(app) as client:
        response = client.post(
            "/v1/tasks/invert", content=_picture(rng), headers={"content-type": "image/png"}
        )
    assert response.status_code == 200 and in_loop and not any(in_loop)


@pytest.fixture
def tiled_task(toy_tasks: None, tmp_path: Path) -> Iterator[None]:
    from toy_tasks import TiledToyTasksPlugin

    name = imgzoo.register_plugin(TiledToyTasksPlugin(), name="tiled-toy-tasks")
    write_seeded_weights(tmp_path, ["smooth"])
    yield
    imgzoo.unregister_plugin(name)


def test_tile_is_an_option_as_in_run(tiled_task: None, rng: np.random.Generator) -> None:
    picture = _picture(rng, 48, 40)
    headers = {"content-type": "image/png"}
    with local_client(create_app(["smooth"])) as client:
        for tile in (0, 32):
            response = client.post(f"/v1/tasks/smooth?tile={tile}", content=picture, headers=headers)
            assert response.status_code == 200, response.text
            np.testing.assert_array_equal(
                decode_png(response.content), imgzoo.run("smooth", picture, tile=tile)
            )
        # Tiles blend without seams, so the results match whole or tiled: the models tell them apart.
        loaded = sorted(worker.name for worker in client.app.state.batcher.workers)  # type: ignore[attr-defined]
        assert loaded == ['["smooth", {"tile": 0}]', '["smooth", {"tile": 32}]', '["smooth", {}]']
        small = client.post("/v1/tasks/smooth?tile=8", content=picture, headers=headers)
        assert small.status_code == 400 and "too small" in small.json()["error"]
