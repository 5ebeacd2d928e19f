"""Time and peak memory of ``edges2photo`` (its shipped weights, tiles of 1024) on a large
drawing, tiled, in a fresh process. A report, not a test: there is no reference to hold these
figures to (``tests/benchmarks/test_tiling_bench.py`` asserts the tiled ``denoise``'s peak memory,
and tiling's time against an untiled run). From the repository root::

    OMP_NUM_THREADS=1 python tests/benchmarks/reports/tiled_edges2photo.py [SIDE]

SIDE defaults to 8192 (a drawing of 8192x8192 pixels).
"""

from __future__ import annotations

import subprocess
import sys

GIB = 2**30

SCRIPT = """
import sys, time
import cv2
import numpy as np
import imgzoo

side = int(sys.argv[1])
drawing = np.full((side, side, 3), 255, np.uint8)
rng = np.random.default_rng(0)
for _ in range(400):  # outlines of figures all over the sheet
    x, y = (int(v) for v in rng.integers(0, side, 2))
    cv2.rectangle(drawing, (x, y), (x + 120, y + 260), (0, 0, 0), 2)
    cv2.circle(drawing, (x + 60, y - 40), 38, (0, 0, 0), 2)
pipeline = imgzoo.load("edges2photo")
started = time.perf_counter()
photo = pipeline(drawing)
seconds = time.perf_counter() - started
assert photo.shape == drawing.shape and photo.dtype == np.uint8
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(seconds, int(line.split()[1]) * 1024)
"""


def main() -> None:
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(side)], capture_output=True, text=True, timeout=3600, check=False
    )
    if completed.returncode != 0:
        sys.exit(completed.stderr)
    seconds, peak = completed.stdout.split()[-2:]
    peak_gib = int(peak) / GIB
    print(f"edges2photo {side}x{side} drawing, tiled: {float(seconds):.0f} s, peak RSS {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
