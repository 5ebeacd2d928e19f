"""Training data from WebDataset shards (``webdataset:``) and Hugging Face datasets (``hfds:``):
read with the real packages, trained on from the CLI, deterministic, resumed exactly after a
real kill, and (shards) read disjointly by the processes of a distributed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from imgzoo import DataError, MissingExtraError, cli
from imgzoo.data import ImageFolder, open_dataset
from imgzoo.data.shards import INDEX_SUFFIX, WebDatasetShards, expand_braces
from imgzoo.images import encode_pixels, save_image, to_uint8
from imgzoo.training import train
from imgzoo.training.batches import BatchPlan
from imgzoo.weights import load_weights
from test_training import run_two_processes

REPO = Path(__file__).resolve().parent.parent
PATHS = [str(REPO / "core"), str(REPO / "plugins"), str(REPO / "tests")]
QUICK: dict[str, Any] = {"batch_size": 4, "device": "cpu", "num_workers": 0, "progress": False}
COUNT = 20


def _pictures() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((20, 20, 3)).astype(np.float32) for _ in range(COUNT)]


def _png(pixels: np.ndarray) -> bytes:
    return encode_pixels(to_uint8(pixels.astype(np.float32)), ".png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    for index, pixels in enumerate(_pictures()):
        save_image(root / f"{index:02d}.png", pixels)
    return root


@pytest.fixture(scope="module")
def shards(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The folder's pictures in four shards of five, written by webdataset's own TarWriter."""
    import webdataset

    root = tmp_path_factory.mktemp("shards")
    for shard in range(4):
        with webdataset.TarWriter(str(root / f"train-{shard:06d}.tar")) as sink:
            for index in range(shard * 5, shard * 5 + 5):
                sink.write({"__key__": f"{index:02d}", "png": (folder / f"{index:02d}.png").read_bytes()})
    return f"webdataset:{root}/train-{{000000..000003}}.tar"


@pytest.fixture(scope="module")
def hf_folder(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The folder's pictures as a ``datasets`` save_to_disk folder with an Image column."""
    import datasets

    root = tmp_path_factory.mktemp("hf") / "pictures"
    # The pictures' bytes embedded, so that the folder does not point back at the files.
    pictures = [{"bytes": (folder / f"{index:02d}.png").read_bytes(), "path": None} for index in range(COUNT)]
    features = datasets.Features({"picture": datasets.Image(), "label": datasets.Value("int64")})
    table = datasets.Dataset.from_dict({"picture": pictures, "label": list(range(COUNT))}, features=features)
    datasets.DatasetDict({"train": table}).save_to_disk(str(root))
    return f"hfds:{root},image=picture"


# ── reading ────────────────────────────────────────────────────────────────────────────────
def test_brace_patterns_expand_in_order() -> None:
    assert expand_braces("s/t-{000..002}.tar") == ["s/t-000.tar", "s/t-001.tar", "s/t-002.tar"]
    assert expand_braces("{a,b}-{1..2}.tar") == ["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"]


def test_shards_hold_the_folders_pictures_and_are_indexed_once(folder: Path, shards: str) -> None:
    dataset = open_dataset(shards, resolution=16)
    assert isinstance(dataset, WebDatasetShards) and len(dataset) == COUNT
    assert dataset.shard_ids().tolist() == [shard for shard in range(4) for _ in range(5)]
    pictures = ImageFolder(folder)
    for index in (0, 7, 19):
        assert np.array_equal(dataset[index].image, pictures[index].image)
    for path in dataset.shards:
        index = json.loads(path.with_name(path.name + INDEX_SUFFIX).read_text())
        assert [key for key, _ in index["samples"]] == [
            f"{n:02d}" for n in range(int(path.stem[-1]) * 5, int(path.stem[-1]) * 5 + 5)
        ]


def test_paired_shards_and_named_inputs(tmp_path: Path) -> None:
    import webdataset

    rng = np.random.default_rng(1)
    image, target, mask = rng.random((8, 8, 3)), rng.random((16, 16, 3)), rng.random((8, 8, 1))
    with webdataset.TarWriter(str(tmp_path / "pairs.tar")) as sink:
        sink.write(
            {"__key__": "a", "input.png": _png(image), "target.png": _png(target), "mask.png": _png(mask)}
        )
    sample = open_dataset(f"webdataset:{tmp_path}/pairs.tar", resolution=8, inputs=["mask"])[0]
    assert (
        sample.image.shape == (8, 8, 3) and sample.target is not None and sample.target.shape == (16, 16, 3)
    )
    assert np.allclose(sample.image, image, atol=1 / 255) and np.allclose(sample.target, target, atol=1 / 255)
    assert sample.inputs["mask"].shape == (8, 8, 1)
    with pytest.raises(DataError, match=r"has no sky\.png member"):
        open_dataset(f"webdataset:{tmp_path}/pairs.tar", resolution=8, inputs=["sky"])[0]
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(f"webdataset:{tmp_path}/missing-{{0..1}}.tar", resolution=8)


def test_a_shard_url_is_downloaded_once_and_read_by_offset(
    shards: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGZOO_CACHE", str(tmp_path / "cache"))
    first = Path(shards.removeprefix("webdataset:").replace("{000000..000003}", "000000"))
    dataset = open_dataset(f"webdataset:{first.as_uri()}", resolution=16)  # file:// is local: no copy
    assert isinstance(dataset, WebDatasetShards) and dataset.shards == [first]
    import fsspec

    # fsspec's in-memory filesystem stands in for a remote store (s3://, https://).
    with fsspec.open(f"memory://bucket/{first.name}", "wb") as remote:
        remote.write(first.read_bytes())
    fetched = open_dataset(f"webdataset:memory://bucket/{first.name}", resolution=16)
    assert isinstance(fetched, WebDatasetShards) and len(fetched) == 5
    assert fetched.shards[0].is_relative_to(tmp_path / "cache")
    assert np.array_equal(fetched[2].image, dataset[2].image)


def test_hf_datasets_folders_parquet_and_columns(folder: Path, hf_folder: str, tmp_path: Path) -> None:
    import datasets

    dataset = open_dataset(hf_folder, resolution=16)
    assert len(dataset) == COUNT
    assert np.array_equal(dataset[3].image, ImageFolder(folder)[3].image)
    # A folder of parquet files, with a target and a named input column.
    rng = np.random.default_rng(2)
    features = datasets.Features({"x": datasets.Image(), "y": datasets.Image(), "mask": datasets.Image()})
    rows = {
        "x": [{"bytes": _png(rng.random((8, 8, 3))), "path": None}],
        "y": [{"bytes": _png(rng.random((16, 16, 3))), "path": None}],
        "mask": [{"bytes": _png(rng.random((8, 8, 1))), "path": None}],
    }
    (tmp_path / "parquet").mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(
        str(tmp_path / "parquet" / "part-0.parquet")
    )
    sample = open_dataset(f"hfds:{tmp_path / 'parquet'},image=x,target=y", resolution=8, inputs=["mask"])[0]
    assert (
        sample.target is not None
        and sample.target.shape == (16, 16, 3)
        and sample.inputs["mask"].shape == (8, 8, 1)
    )
    with pytest.raises(DataError, match=r"'nope' is not a datasets\.Image column"):
        open_dataset(hf_folder.replace("image=picture", "image=nope"), resolution=16)
    with pytest.raises(DataError, match="no split 'test'"):
        open_dataset(f"{hf_folder},split=test", resolution=16)


def test_without_datasets_hfds_is_one_line_naming_the_extra(
    hf_folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'imgzoo\[hfds\]'") as missing:
        open_dataset(hf_folder, resolution=16)
    assert "\n" not in str(missing.value)


# ── training: determinism, exact resume after a kill, the CLI ──────────────────────────────
def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_weights(path)[0]


def _equal(a: Path, b: Path) -> bool:
    first, second = _weights(a), _weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


KILL_SCRIPT = """
import os, signal, sys
sys.path[:0] = {paths!r}
import imgzoo
from toy_tasks import ToyTasksPlugin
imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
from imgzoo.training import Callback, train

class Kill(Callback):
    def on_step_end(self, trainer, step, losses):
        if step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint, no clean-up: a real kill

train("invert", {data!r}, out={out!r}, callbacks=[Kill()], **{options!r})
"""


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread here, as in the killed process (OMP_NUM_THREADS=1): sums over another
    number of threads round otherwise, and a bitwise comparison would fail for that alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("toy_tasks", "one_thread")
@pytest.mark.parametrize("source", ["shards", "hf_folder"])
def test_training_is_deterministic_and_resumes_exactly_after_a_kill(
    source: str, folder: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data: str = request.getfixturevalue(source)
    options = {**QUICK, "steps": 8, "checkpoint_every": 3, "eval_every": 4, "lr_schedule": "linear"}
    full = train("invert", data, tmp_path / "full", **options)
    again = train("invert", data, tmp_path / "again", **{**options, "num_workers": 2})
    assert full.weights is not None and again.weights is not None and _equal(full.weights, again.weights)
    # The same pictures in the same order as a folder: the same run.
    as_folder = train("invert", str(folder), tmp_path / "folder", **options)
    assert as_folder.weights is not None and _equal(full.weights, as_folder.weights)

    out = tmp_path / "killed"
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT.format(paths=PATHS, kill_at=5, data=data, out=str(out), options=options))
    killed = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        timeout=240,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    # Killed after step 5: the newest checkpoint is step 4's (the best one, after the evaluation).
    names = sorted(path.name for path in (out / "checkpoints").iterdir())
    assert [name for name in names if name.startswith("step-")] == ["step-00000003"]
    assert not (out / "invert.safetensors").exists()
    command = ["train", "invert", "--data", data, "--out", str(out), "--resume"]
    assert (
        cli.main([*command, "--set", "device=cpu", "--set", "num_workers=0", "--set", "progress=false"]) == 0
    )
    assert _equal(full.weights, out / "invert.safetensors")


# ── distributed: each process reads its own shards ─────────────────────────────────────────
def test_the_sharded_order_gives_each_process_its_own_shards_and_one_process_the_folder_order() -> None:
    shards = np.repeat(np.arange(6), 5)
    alone = BatchPlan(30, 4, seed=3, shards=shards)
    assert np.array_equal(alone.epoch_order(1), BatchPlan(30, 4, seed=3).epoch_order(1))
    plan = BatchPlan(30, 4, grad_accum=2, world_size=2, seed=3, shards=shards)
    owned = [set(plan.shards_of_rank(rank)) for rank in (0, 1)]
    assert not owned[0] & owned[1] and owned[0] | owned[1] == set(range(6))
    for epoch in (0, 1):
        for rank in (0, 1):
            for step in range(epoch * plan.steps_per_epoch, (epoch + 1) * plan.steps_per_epoch):
                read = {int(shards[i]) for batch in plan.micro_batches(step, rank) for _, i in batch}
                assert read <= owned[rank]


DDP_SCRIPT = """
import json, os, sys
sys.path[:0] = {paths!r}
import imgzoo
from toy_tasks import ToyTasksPlugin
imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
from imgzoo.data.shards import WebDatasetShards
from imgzoo.training import train

read = []
original = WebDatasetShards.__getitem__

def recording(self, index):
    read.append(int(self.shard_ids()[index]))
    return original(self, index)

WebDatasetShards.__getitem__ = recording
try:
    train("invert", {data!r}, out={out!r}, **{options!r})
finally:
    rank = os.environ["RANK"]
    with open({seen!r} + "-" + rank + ".json", "w") as file:
        json.dump(read, file)
"""


@pytest.mark.slow
def test_two_processes_read_disjoint_shards_and_only_the_main_one_logs(shards: str, tmp_path: Path) -> None:
    # No validation split: only training reads are recorded (main also reads validation items).
    options = {**QUICK, "steps": 6, "val_fraction": 0, "loggers": ["tensorboard"], "log_every": 1}
    seen, out = str(tmp_path / "read"), tmp_path / "ddp"
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(paths=PATHS, data=shards, out=str(out), options=options, seen=seen))
    completed = run_two_processes(script)
    assert completed.returncode == 0, completed.stderr[-3000:]
    read = [set(json.loads(Path(f"{seen}-{rank}.json").read_text())) for rank in (0, 1)]
    assert read[0] and read[1] and not read[0] & read[1]
    # 6 steps of 4 over 20 pictures: two epochs, the same two shards per process in both.
    assert len(read[0]) == len(read[1]) == 2
    assert len(list((out / "tensorboard").iterdir())) == 1  # one process wrote events
    assert (out / "invert.safetensors").is_file()


# ── imgzoo data pack ───────────────────────────────────────────────────────────────────────
@pytest.mark.usefixtures("toy_tasks")
def test_data_pack_writes_shards_the_cli_trains_on(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    assert cli.main(["data", "pack", str(folder), "-o", str(out), "--shard-size", "8"]) == 0
    printed = capsys.readouterr().out
    assert sorted(path.name for path in out.glob("*.tar")) == [f"train-{n:06d}.tar" for n in range(3)]
    spec = f"webdataset:{out}/train-{{000000..000002}}.tar"
    assert f"--data {spec}" in printed
    import webdataset

    # webdataset's own reader reads them, byte for byte the folder's files.
    first = next(iter(webdataset.WebDataset(str(out / "train-000000.tar"), shardshuffle=False)))
    assert first["__key__"] == "00" and first["png"] == (folder / "00.png").read_bytes()
    # Packing again does not overwrite unless asked.
    assert cli.main(["data", "pack", str(folder), "-o", str(out)]) == 1
    run = tmp_path / "run"
    command = [
        "train",
        "invert",
        "--data",
        spec,
        "--out",
        str(run),
        "--set",
        "steps=3",
        "--set",
        "device=cpu",
    ]
    assert cli.main([*command, "--set", "num_workers=0", "--set", "progress=false"]) == 0
    assert (run / "invert.safetensors").is_file()


def test_data_pack_keeps_pairs_and_named_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for side, size in (("A", 8), ("B", 16), ("mask", 8)):
        for name in ("x.png", "y.png"):
            channels = 1 if side == "mask" else 3
            save_image(
                tmp_path / "pairs" / side / name, rng.random((size, size, channels)).astype(np.float32)
            )
    command = ["data", "pack", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards")]
    assert cli.main(command) == 1  # the targets are twice the size: --scale says so
    assert cli.main([*command, "--scale", "2"]) == 0
    dataset = open_dataset(f"webdataset:{tmp_path}/shards/train-000000.tar", resolution=8, inputs=["mask"])
    paired = open_dataset(f"paired:{tmp_path / 'pairs'}", resolution=8, scale=2, inputs=["mask"])
    assert len(dataset) == len(paired) == 2
    for index in range(2):
        packed, original = dataset[index], paired[index]
        assert np.array_equal(packed.image, original.image) and packed.target is not None
        assert original.target is not None and np.array_equal(packed.target, original.target)
        assert np.array_equal(packed.inputs["mask"], original.inputs["mask"])


HF_DDP_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import imgzoo
from toy_tasks import ToyTasksPlugin
imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
from imgzoo.training import train
train("invert", {data!r}, out={out!r}, **{options!r})
"""


@pytest.mark.slow
@pytest.mark.usefixtures("toy_tasks")
def test_two_processes_training_from_a_hf_dataset_match_one(hf_folder: str, tmp_path: Path) -> None:
    # Rows stand alone (no shards): each process reads its part of every batch, as from a folder,
    # so two processes train what one does, up to the order of the gradient sums.
    options = {**QUICK, "steps": 4, "precision": "fp32", "eval_every": 10}
    single = train("invert", hf_folder, tmp_path / "single", **options)
    script, out = tmp_path / "ddp.py", tmp_path / "ddp"
    script.write_text(HF_DDP_SCRIPT.format(paths=PATHS, data=hf_folder, out=str(out), options=options))
    completed = run_two_processes(script)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert single.weights is not None
    expected, actual = _weights(single.weights), _weights(out / "invert.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.allclose(expected[k], actual[k], rtol=1e-5, atol=1e-6) for k in expected)
