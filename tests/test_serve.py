"""``imgzoo serve``: the HTTP API's results, batching, limits and errors, through FastAPI's
test client (the load and browser tests run a real server)."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import imgzoo
from imgzoo.cli import main
from imgzoo.errors import RequestError
from imgzoo.serve import ServeSettings, create_app
from imgzoo.serve.app import choose_format
from imgzoo.serve.batching import Batcher, Job
from serving import decode_png, encode_png, png_bomb, random_pictures, write_seeded_weights

TASKS = ("invert", "toy-upscale", "toy-depth", "toy-inpaint")


@pytest.fixture
def seeded(toy_tasks: None, contract_tasks: None, tmp_path: Path) -> None:
    write_seeded_weights(tmp_path, TASKS)


@pytest.fixture
def client(seeded: None) -> Iterator[TestClient]:
    with TestClient(create_app(TASKS)) as test_client:
        yield test_client


def _picture(rng: np.random.Generator, height: int = 12, width: int = 10) -> bytes:
    return random_pictures(rng, [(height, width)])[0]


def test_tasks_are_the_catalogue_of_imgzoo_list(
    toy_tasks: None, contract_tasks: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    with TestClient(create_app()) as everything:
        assert everything.get("/v1/tasks").json() == listed
        assert everything.get("/healthz").json() == {"status": "ok", "tasks": [t["name"] for t in listed]}
    inpaint = next(entry for entry in listed if entry["name"] == "toy-inpaint")
    assert inpaint["inputs"][0]["name"] == "mask" and inpaint["output_kind"] == "image"


@pytest.mark.parametrize("max_batch", [1, 8], ids=["batching-off", "batching-on"])
def test_results_equal_run(seeded: None, rng: np.random.Generator, max_batch: int) -> None:
    picture = _picture(rng)
    mask = encode_png((rng.random((12, 10)) < 0.3).astype(np.uint8) * 255)
    with TestClient(create_app(TASKS, ServeSettings(max_batch=max_batch))) as client:
        for task in ("invert", "toy-upscale"):
            response = client.post(
                f"/v1/tasks/{task}", content=picture, headers={"content-type": "image/png"}
            )
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
    client: TestClient, rng: np.random.Generator
) -> None:
    picture = _picture(rng)
    expected = imgzoo.run("invert", picture, gain=0.5)
    by_query = client.post(
        "/v1/tasks/invert?gain=0.5", content=picture, headers={"content-type": "image/png"}
    )
    by_form = client.post("/v1/tasks/invert", files={"image": ("a.png", picture)}, data={"gain": "0.5"})
    for response in (by_query, by_form):
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(decode_png(response.content), expected)
    assert not np.array_equal(expected, imgzoo.run("invert", picture))


def test_concurrent_requests_of_one_size_run_as_one_batch(seeded: None, rng: np.random.Generator) -> None:
    pictures = random_pictures(rng, [(8, 8)] * 4 + [(6, 9)] * 2)
    # A long wait, so the batches are decided by their size alone: four of 8x8, two of 6x9.
    settings = ServeSettings(max_batch=4, max_wait_ms=3000)
    with TestClient(create_app(["invert"], settings)) as client:
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


def test_output_formats(client: TestClient, rng: np.random.Generator) -> None:
    picture = _picture(rng)
    headers = {"content-type": "image/png"}
    as_jpeg = client.post("/v1/tasks/invert?format=jpg", content=picture, headers=headers)
    assert as_jpeg.headers["content-type"] == "image/jpeg" and as_jpeg.content.startswith(b"\xff\xd8")
    by_accept = client.post("/v1/tasks/invert", content=picture, headers={**headers, "accept": "image/webp"})
    assert by_accept.headers["content-type"] == "image/webp" and by_accept.content[8:12] == b"WEBP"
    as_array = client.post("/v1/tasks/invert?format=npy", content=picture, headers=headers)
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
    "bomb": ("/v1/tasks/invert", {"content": png_bomb(), "headers": {"content-type": "image/png"}}, 400),
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
def test_bad_requests_are_4xx_with_the_error(client: TestClient, rng: np.random.Generator, case: str) -> None:
    path, arguments, status = BAD_REQUESTS[case]
    picture = _picture(rng)
    if "files" in arguments:
        arguments = {
            **arguments,
            "files": {name: (file, picture) for name, (file, _) in arguments["files"].items()},
        }
    response = client.post(path, **arguments)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and error


def test_error_messages_say_what_to_do(client: TestClient, rng: np.random.Generator) -> None:
    bomb = client.post("/v1/tasks/invert", content=png_bomb(), headers={"content-type": "image/png"})
    assert "over the limit" in bomb.json()["error"] and "IMGZOO_MAX_PIXELS" in bomb.json()["error"]
    missing = client.post("/v1/tasks/toy-inpaint", files={"image": ("a.png", _picture(rng))})
    assert "needs input 'mask'" in missing.json()["error"]
    unknown = client.post("/v1/tasks/invertt", content=b"x", headers={"content-type": "image/png"})
    assert "did you mean 'invert'" in unknown.json()["error"]
    option = client.post("/v1/tasks/invert?strength=2", files={"image": ("a.png", _picture(rng))})
    assert "strength" in option.json()["error"] and "unknown field" in option.json()["error"]


def test_a_request_over_the_size_limit_is_413(seeded: None, rng: np.random.Generator) -> None:
    picture = _picture(rng, 64, 64)
    with TestClient(create_app(["invert"], ServeSettings(max_request_bytes=len(picture) - 1))) as client:
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
    with TestClient(app) as client:
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
    with TestClient(app) as client:
        response = client.post(
            "/v1/tasks/invert", content=_picture(rng), headers={"content-type": "image/png"}
        )
        assert response.status_code == 504 and "timeout" in response.json()["error"]
        assert app.state.batcher.in_flight == 0  # the abandoned job gave its place back


def test_a_cancelled_job_is_not_run() -> None:
    gate = threading.Event()
    pipeline_calls: list[int] = []

    class Recorder:
        def run_prepared(self, call: Any) -> list[np.ndarray]:
            pipeline_calls.append(len(call.inputs))
            return [image.stored for image in call.inputs]

    def load() -> Any:
        gate.wait(timeout=60)
        return Recorder()

    from imgzoo.images import decode_image

    batcher = Batcher(max_batch=4, max_wait=0, queue=2)
    worker = batcher.worker("recorder", load)
    image = decode_image(encode_png(np.zeros((4, 4, 3), np.uint8)))
    kept, dropped, refused = Job(image, {}), Job(image, {}), Job(image, {})
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
    with TestClient(create_app(["invert"], ServeSettings(backend="onnxruntime"))) as client:
        response = client.post("/v1/tasks/invert", content=picture, headers={"content-type": "image/png"})
        assert response.status_code == 200, response.text
    served = decode_png(response.content).astype(int)
    expected = imgzoo.run("invert", picture, backend="onnxruntime").astype(int)
    assert np.abs(served - expected).max() == 0
    assert np.abs(served - imgzoo.run("invert", picture).astype(int)).max() <= 1  # torch, to rounding


def test_pages_are_served_without_internet_assets(client: TestClient) -> None:
    for path in ("/", "/docs", "/static/app.js", "/static/style.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "http://" not in response.text and "https://" not in response.text, path
    assert "/v1/tasks/{task}" in client.get("/openapi.json").json()["paths"]
    assert client.get("/redoc").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


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


def test_cli_serve_errors_are_one_line(
    toy_tasks: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "invertt"]) == 1
    assert capsys.readouterr().err.strip().startswith("imgzoo: error: unknown task 'invertt'")
    assert main(["serve", "invert", "--max-batch", "0"]) == 1
    assert "max_batch: must be at least 1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve", "invert"]) == 1
    error = capsys.readouterr().err
    assert (
        error
        == "imgzoo: error: imgzoo serve needs fastapi, which is not installed: pip install 'imgzoo[serve]'\n"
    )
