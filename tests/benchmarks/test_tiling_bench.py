"""Tiled inference on CPU, one thread (not part of the default run)::

    OMP_NUM_THREADS=1 PYTHONPATH=core:plugins:examples/imgzoo-denoise/src \\
        python -m pytest tests/benchmarks/test_tiling_bench.py -p no:cacheprovider -s

* peak memory (VmHWM, in a fresh subprocess) of ``denoise`` on an 8192x8192 RGB uint8 array,
  array in and array out: under 2 GB;
* time of a tiled run against an untiled one of the same image, interleaved: at most 1.3x.
  ``TILING_BENCH_SIDE`` sets the side (default 2048: an untiled 4096x4096 denoise needs about
  10 GB for its activations, more than a shared machine should be asked for).

``edges2photo``'s time and memory on an 8192x8192 drawing, which have no target, are a report:
``python tests/benchmarks/reports/tiled_edges2photo.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import imgzoo

GIB = 2**30

PEAK_SCRIPT = """
import sys
import numpy as np
import imgzoo, imgzoo_denoise

imgzoo.register_plugin(imgzoo_denoise, name="denoise")
side = int(sys.argv[1])
noisy = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
clean = imgzoo.load("denoise")(noisy)
assert clean.shape == noisy.shape and clean.dtype == np.uint8
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024)
"""


def test_an_8192_pixel_image_runs_tiled_in_under_2_gb() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, "8192"], capture_output=True, text=True, timeout=3600, check=False
    )
    assert completed.returncode == 0, completed.stderr
    peak = int(completed.stdout.split()[-1])
    print(f"\ndenoise 8192x8192 RGB uint8, tiled: peak RSS {peak / GIB:.2f} GiB")
    assert peak < 2 * GIB


@pytest.fixture
def denoise() -> imgzoo.Pipeline:
    import imgzoo_denoise

    if "denoise" not in imgzoo.list_tasks():
        imgzoo.register_plugin(imgzoo_denoise, name="denoise")
    return imgzoo.load("denoise")


def test_tiled_costs_at_most_1_3_times_untiled(denoise: imgzoo.Pipeline) -> None:
    side = int(os.environ.get("TILING_BENCH_SIDE", "2048"))
    noisy = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    tiling = denoise.tiling
    times: dict[str, list[float]] = {"tiled": [], "whole": []}
    for _ in range(3):  # interleaved, so that a busy moment of the machine hits both
        for mode in times:
            denoise.tiling = tiling if mode == "tiled" else None
            start = time.perf_counter()
            denoise(noisy)
            times[mode].append(time.perf_counter() - start)
    tiled, whole = min(times["tiled"]), min(times["whole"])
    print(f"\ndenoise {side}x{side}: tiled {tiled:.2f} s, whole {whole:.2f} s, ratio {tiled / whole:.2f}")
    assert tiled <= 1.3 * whole
