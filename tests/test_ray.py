"""Ray: a Ray Dataset through ``TaskPredictor`` and ``imgzoo run --engine ray`` give what
``imgzoo.run`` gives, on one local cluster for the session (Ray starts slowly)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import imgzoo
from imgzoo.cli import main
from imgzoo.errors import InputError, MissingExtraError
from imgzoo.integrations.ray import TaskPredictor, require_ray
from serving import encode_png, write_seeded_weights


def _pictures(rng: np.random.Generator, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.mark.slow
def test_a_dataset_of_arrays_and_of_files_gives_what_run_gives(
    ray_cluster: None, rng: np.random.Generator, tmp_path: Path
) -> None:
    import ray

    arrays = _pictures(rng, [(32, 32)] * 3 + [(24, 32)] * 2)  # two shapes: a ragged column
    by_arrays = ray.data.from_items([{"id": i, "image": a} for i, a in enumerate(arrays)])
    for index, pixels in enumerate(arrays):
        (tmp_path / f"{index}.png").write_bytes(encode_png(pixels))
    by_files = ray.data.read_binary_files(str(tmp_path), include_paths=True)  # columns bytes, path
    colored = by_arrays.map_batches(
        TaskPredictor, fn_constructor_kwargs={"task": "colorize"}, batch_size=4, concurrency=1
    )
    from_bytes = by_files.map_batches(
        TaskPredictor,
        fn_constructor_kwargs={"task": "colorize", "image_column": "bytes"},
        batch_size=4,
        concurrency=1,
    )
    expected = imgzoo.run("colorize", arrays)
    for row in colored.take_all():
        np.testing.assert_array_equal(row["result"], expected[row["id"]])
    rows = from_bytes.take_all()
    assert len(rows) == len(arrays)
    for row in rows:
        index = int(Path(row["path"]).stem)
        assert row["result"].dtype == np.uint8  # run() gives 8-bit pixels for an encoded image
        np.testing.assert_array_equal(
            row["result"], imgzoo.run("colorize", (tmp_path / f"{index}.png").read_bytes())
        )


@pytest.mark.slow
def test_named_inputs_come_as_columns(
    ray_cluster: None, toy_tasks: None, contract_tasks: None, rng: np.random.Generator, tmp_path: Path
) -> None:
    import ray

    write_seeded_weights(tmp_path, ["toy-inpaint"])  # what the workers load as the default
    pictures = _pictures(rng, [(12, 10)] * 3)
    masks = [(rng.random((12, 10)) < 0.3).astype(np.uint8) * 255 for _ in pictures]
    rows = [{"id": i, "image": p, "mask": m} for i, (p, m) in enumerate(zip(pictures, masks, strict=True))]
    filled = ray.data.from_items(rows).map_batches(
        TaskPredictor, fn_constructor_kwargs={"task": "toy-inpaint"}, batch_size=2, concurrency=1
    )
    results = {row["id"]: row["result"] for row in filled.take_all()}
    for index, (picture, mask) in enumerate(zip(pictures, masks, strict=True)):
        expected = imgzoo.run("toy-inpaint", picture, mask=mask)
        np.testing.assert_array_equal(results[index], expected)


@pytest.mark.slow
def test_cli_engine_ray_writes_what_the_local_engine_writes(
    ray_cluster: None, rng: np.random.Generator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    for index, pixels in enumerate(_pictures(rng, [(32, 32)] * 3)):
        (inputs / ("sub" if index == 2 else "") / f"p{index}.jpg").write_bytes(encode_png(pixels))
    assert main(["run", "colorize", str(inputs), "-o", str(tmp_path / "local")]) == 0
    assert main(["run", "colorize", str(inputs), "-o", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    assert "wrote 3 images" in capsys.readouterr().out
    written = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.png"))
    assert written == [Path("p0.png"), Path("p1.png"), Path("sub/p2.png")]
    for name in written:
        local = imgzoo.images.load_image(tmp_path / "local" / name).stored
        np.testing.assert_array_equal(imgzoo.images.load_image(tmp_path / "ray" / name).stored, local)


@pytest.mark.slow
def test_cli_engine_ray_reports_a_worker_error_in_one_line(
    ray_cluster: None, rng: np.random.Generator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    assert (
        main(
            ["run", "colorize", str(tmp_path / "broken.png"), "-o", str(tmp_path / "out/"), "--engine", "ray"]
        )
        == 1
    )
    error = capsys.readouterr().err.strip()
    assert error.startswith("imgzoo: error: ") and "broken.png" in error and "\n" not in error
    assert not (tmp_path / "out" / "broken.png").exists()


def test_cli_engine_ray_keeps_what_exists_before_ray_starts(
    rng: np.random.Generator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "a.png"
    picture.write_bytes(encode_png(_pictures(rng, [(8, 8)])[0]))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"kept")
    assert main(["run", "colorize", str(picture), "-o", str(tmp_path / "out/"), "--engine", "ray"]) == 1
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert main(["run", "colorize", str(picture), "-o", str(tmp_path), "--engine", "ray"]) == 1
    assert "would replace its input" in capsys.readouterr().err
    assert (tmp_path / "out" / "a.png").read_bytes() == b"kept"
    assert main(["run", "colorize", str(picture), "--concurrency", "2"]) == 1
    assert capsys.readouterr().err.strip() == "imgzoo: error: --concurrency is for --engine ray"
    assert main(["run", "colorize", "s3://bucket/*.jpg", "-o", str(tmp_path / "s3"), "--engine", "ray"]) == 1
    assert "TaskPredictor" in capsys.readouterr().err


def test_a_batch_without_the_image_column_names_the_columns() -> None:
    predictor = TaskPredictor("colorize", weights="none")
    with pytest.raises(InputError, match=r"no column 'image' \(its columns: 'bytes', 'path'\)"):
        predictor({"bytes": np.array([b""], dtype=object), "path": np.array(["a.png"])})


def test_a_missing_ray_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rng: np.random.Generator,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'imgzoo\[ray\]'"):
        require_ray("for a test")
    picture = tmp_path / "a.png"
    picture.write_bytes(encode_png(_pictures(rng, [(8, 8)])[0]))
    assert main(["run", "colorize", str(picture), "-o", str(tmp_path / "out/"), "--engine", "ray"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        "imgzoo: error: ray[data,serve] is not installed (for imgzoo run colorize --engine ray): "
        "pip install 'imgzoo[ray]'"
    )


def test_cli_serve_engine_ray_refuses_before_ray_starts(
    toy_tasks: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "invert", "--engine", "ray", "--replicas", "0"]) == 1
    assert capsys.readouterr().err.strip() == "imgzoo: error: --replicas must be at least 1, got 0"
    assert main(["serve", "nosuch", "--engine", "ray"]) == 1
    assert capsys.readouterr().err.startswith("imgzoo: error: unknown task 'nosuch'")
    assert main(["serve", "invert", "--engine", "ray", "--max-batch", "0"]) == 1
    assert "--max-batch" in capsys.readouterr().err
