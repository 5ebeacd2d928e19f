"""Start-up cost of the command line: ``imgzoo list`` in a fresh process takes at most half the
time of a fresh process that only imports torch (``imgzoo list`` imports no torch), the two
interleaved (``interleaving.py``) so that load on a shared machine hits both alike.

Run: python -m pytest tests/benchmarks/test_core_bench.py --benchmark-enable -p no:cacheprovider -s

What a warm ``run()`` adds to a network's forward is held to a ratio on real networks, by
``test_colorize_bench.py`` (a), ``test_edges2photo_bench.py`` and the super-resolution example's
benchmark. The absolute figures, the overhead of a warm ``run()`` on toy networks in
milliseconds and a cold ``load()``, have no reference to hold them to:
``python tests/benchmarks/reports/framework_overhead.py`` prints them.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys

from interleaving import interleaved, ratio


def test_imgzoo_list_takes_less_than_importing_torch(benchmark) -> None:  # type: ignore[no-untyped-def]
    """`imgzoo list` as a user runs it, a fresh process, against a fresh process importing torch."""
    command = [shutil.which("imgzoo") or "imgzoo", "list"]
    if shutil.which("imgzoo") is None:
        command = [sys.executable, "-m", "imgzoo.cli", "list"]
    times = interleaved(
        {
            "list": lambda: subprocess.run(command, check=True, capture_output=True),
            "import torch": lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True),
        },
        repeats=2,
    )
    share = ratio(times, "list", "import torch")
    benchmark.pedantic(lambda: subprocess.run(command, check=True, capture_output=True), rounds=3)
    benchmark.extra_info.update(list_s=statistics.median(times["list"]), share_of_torch_import=share)
    print(
        f"\nimgzoo list: median {statistics.median(times['list']):.3f} s, importing torch "
        f"{statistics.median(times['import torch']):.3f} s: {share:.2f} of it (target <= 0.5)"
    )
    # Python and imgzoo's light imports (pydantic, pluggy, the registry) are a fraction of
    # torch's import; a listing that imported torch would take longer than the import alone.
    assert share <= 0.5
