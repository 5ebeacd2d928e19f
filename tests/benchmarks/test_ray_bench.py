"""Batch inference beyond one process (pytest-benchmark; not part of the default run)::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_ray_bench.py -p no:cacheprovider \
        --benchmark-enable -s

colorize with its shipped weights on the same 200 pictures of 64x64, each engine writing the
results to a folder of its own:

- ``imgzoo run DIR -o OUT``: one process (the baseline);
- ``imgzoo run DIR -o OUT --engine ray``: Ray Data on a local cluster the command starts;
- Ray Data on a cluster started before the clock starts (``TaskPredictor``, one worker per
  CPU, each saving its results): what a user with a running cluster gets;
- ``torchrun --nproc-per-node 2 -m imgzoo.cli run DIR -o OUT``: the torch.distributed recipe.

Each command is timed from start to exit (imports and model loads included). Reported: images/s
of each, and its ratio to the baseline's, measured in the same run. Asserted: every engine wrote
the same files as the baseline, bit for bit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from imgzoo.images import load_image
from serving import encode_png

PICTURES, SIDE = 200, 64
REPO = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("core", "plugins")),
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for index in range(PICTURES):
        pixels = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        (folder / f"{index:03d}.png").write_bytes(encode_png(pixels))
    return folder


def _timed(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, env=ENVIRONMENT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def _ray_data_on_a_running_cluster(pictures: Path, output: Path) -> float:
    """Seconds for Ray Data to run the pictures with a cluster already up, in a process of its own."""
    script = f"""
import time, ray
from imgzoo.integrations.ray import run_files
from imgzoo.cli import expand_inputs
from pathlib import Path
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
jobs = expand_inputs([{str(pictures)!r}])
began = time.perf_counter()
run_files("colorize", [(path, Path({str(output)!r}) / name) for path, name in jobs], {{}})
print(time.perf_counter() - began)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=ENVIRONMENT, check=True, capture_output=True, text=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def test_ray_data_beside_imgzoo_run(benchmark, pictures: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = ["-m", "imgzoo.cli", "run", "colorize", str(pictures)]
    cli = [sys.executable, *run]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    outputs = {name: tmp_path / name for name in ("local", "ray-cli", "ray-running", "torchrun")}
    seconds = {
        "local": benchmark.pedantic(_timed, ([*cli, "-o", str(outputs["local"])],), rounds=1, iterations=1),
        "ray-cli": _timed([*cli, "-o", str(outputs["ray-cli"]), "--engine", "ray"]),
        "ray-running": _ray_data_on_a_running_cluster(pictures, outputs["ray-running"]),
        "torchrun": _timed([*torchrun, *run, "-o", str(outputs["torchrun"])]),
    }
    figures = {f"{name}_images_per_s": PICTURES / value for name, value in seconds.items()}
    figures |= {
        f"{name}_ratio": seconds["local"] / value for name, value in seconds.items() if name != "local"
    }
    benchmark.extra_info.update(figures)
    print("\n" + ", ".join(f"{name}={value:.2f}" for name, value in figures.items()))
    expected = sorted(path.relative_to(outputs["local"]) for path in outputs["local"].rglob("*.png"))
    assert len(expected) == PICTURES
    for name, folder in outputs.items():
        written = sorted(path.relative_to(folder) for path in folder.rglob("*.png"))
        assert written == expected, name
        for relative in expected:
            same = load_image(folder / relative).stored
            np.testing.assert_array_equal(same, load_image(outputs["local"] / relative).stored, err_msg=name)
    shutil.rmtree(tmp_path, ignore_errors=True)
