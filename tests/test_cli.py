"""The imgzoo command line: one clean line per error, the right exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import imgzoo
from imgzoo import plugins
from imgzoo.cli import main
from toy_tasks import InvertTask, write_invert_weights, write_registry

pytestmark = pytest.mark.usefixtures("toy_tasks")


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.png", "d.png", "e.png"]):
        assert cv2.imwrite(str(folder / name), np.full((6 + i, 9, 3), 40 * i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def invert_weights(tmp_path: Path) -> None:
    sha256 = write_invert_weights(tmp_path / "w.safetensors")
    write_registry(tmp_path / "r.toml", "invert", {"exact": ("w.safetensors", sha256)}, default="exact")
    imgzoo.add_registry(tmp_path / "r.toml")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and imgzoo.__version__ in capsys.readouterr().out


def test_list_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "invert" in out and "Photographic negative" in out and "toygan" in out
    assert "minifigs: procedural toy minifigure pictures" in out  # data sources are listed too
    assert main(["list", "inv*", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in listed] == ["invert"]


def test_info_and_schema(capsys: pytest.CaptureFixture[str], invert_weights: None) -> None:
    assert main(["info", "invert"]) == 0
    out = capsys.readouterr().out
    assert "exact (default)" in out and "gain" in out and "sha256" in out
    assert main(["info", "invert", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False and "gain" in schema["properties"]


def test_run_on_a_folder_writes_every_image(
    images_dir: Path, tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", "invert", str(images_dir), "-o", str(out), "--batch-size", "2"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "b.png", "d.png", "e.png", "sub/c.png"]  # the folder's layout is kept
    result = cv2.imread(str(out / "d.png"))
    assert result.shape == (9, 9, 3) and int(result[0, 0, 0]) == 255 - 120
    assert "wrote 5 images" in capsys.readouterr().out


def test_run_globs_single_file_and_set(images_dir: Path, tmp_path: Path, invert_weights: None) -> None:
    out = tmp_path / "one.png"
    assert main(["run", "invert", str(images_dir / "a.png"), "-o", str(out), "--set", "gain=1.0"]) == 0
    assert cv2.imread(str(out)).min() == 255
    globbed = tmp_path / "globbed"
    assert main(["run", "invert", str(images_dir / "*.png"), "-o", str(globbed)]) == 0
    assert sorted(p.name for p in globbed.iterdir()) == ["a.png", "d.png", "e.png"]


def test_a_path_that_exists_is_that_file_whatever_its_characters(
    tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, 'x[1].png' was a glob matching x1.png, which was run instead, silently.
    assert cv2.imwrite(str(tmp_path / "x[1].png"), np.zeros((5, 7, 3), np.uint8))
    assert cv2.imwrite(str(tmp_path / "x1.png"), np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "out.png"
    assert main(["run", "invert", str(tmp_path / "x[1].png"), "-o", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (5, 7, 3)
    assert "matched" not in capsys.readouterr().err


def test_a_pattern_says_how_many_paths_it_matched(
    images_dir: Path, tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "invert", str(images_dir / "[ad].png"), "-o", str(tmp_path / "out")]) == 0
    assert f"imgzoo: {str(images_dir / '[ad].png')!r} matched 2 path(s)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "d.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
def test_a_fifo_in_an_input_folder_is_left_out_not_waited_on(
    images_dir: Path, tmp_path: Path, invert_weights: None
) -> None:
    os.mkfifo(images_dir / "pipe.png")  # before, reading it hung the run
    out = tmp_path / "out"
    assert main(["run", "invert", str(images_dir), "-o", str(out)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a.png",
        "b.png",
        "d.png",
        "e.png",
        "sub/c.png",
    ]


def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed["toy-tasks"]["tasks"] == ["invert", "toygan"] and listed["toy-tasks"]["status"] == "loaded"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "invertt", "x.png"], "unknown task 'invertt': did you mean 'invert'?"),
        (["info", "nope"], "unknown task 'nope'"),
        (["run", "invert", "MISSING.png"], "MISSING.png"),
        (["run", "invert", "CORRUPT.png"], "CORRUPT.png"),
        (["run", "invert", "NOMATCH*.png"], "no files match"),
        (["run", "invert", "GOOD.png", "--set", "gain=-1"], "gain"),
        (["run", "invert", "GOOD.png", "--weights", "ghost"], "no weights named 'ghost'"),
        (["run", "invert", "GOOD.png", "--weights", "DAMAGED.safetensors"], "DAMAGED.safetensors is damaged"),
        (["run", "invert", "GOOD.png", "--device", "cuda:7"], "device"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    argv: list[str], message: str, tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "CORRUPT.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cv2.imwrite(str(tmp_path / "GOOD.png"), np.zeros((3, 3, 3), np.uint8))
    write_invert_weights(tmp_path / "DAMAGED.safetensors")
    damaged = bytearray((tmp_path / "DAMAGED.safetensors").read_bytes())
    damaged[-1] ^= 1
    (tmp_path / "DAMAGED.safetensors").write_bytes(damaged)
    argv = [
        str(tmp_path / a)
        if a.isupper() or a.startswith(("MISSING", "CORRUPT", "NOMATCH", "GOOD", "DAMAGED"))
        else a
        for a in argv
    ]
    assert main([*argv, "-o", str(tmp_path / "o")] if argv[0] == "run" else argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("imgzoo: error:")]
    assert len(lines) == 1 and message in err and "Traceback" not in err


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(imgzoo.UnknownTaskError):
        main(["--debug", "info", "nope"])


def test_console_script_runs_in_a_subprocess() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "imgzoo.cli", "info", "no-such-task"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert completed.stderr.strip().startswith("imgzoo: error: unknown task 'no-such-task'")


def test_run_skips_unreadable_files_and_reports_them(
    images_dir: Path, tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (images_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert main(["run", "invert", str(images_dir), "-o", str(out)]) == 1
    assert len(list(out.rglob("*.png"))) == 5
    err = capsys.readouterr().err
    assert "broken.png" in err and "1 of 6 inputs could not be read" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "ONE.png"], "names one file, but there are 2 inputs"),
        (["-o", "OUT.gif"], "cannot write .gif files"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_run_checks_its_arguments_before_loading(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((3, 3, 3), np.uint8))
    extra = [str(tmp_path / e) if e[:1].isupper() else e for e in extra]
    code = main(["run", "invert", str(tmp_path / "a.png"), str(tmp_path / "b.png"), *extra])
    assert code == 1 and message in capsys.readouterr().err


def test_two_inputs_writing_one_output_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "same.png"), np.zeros((3, 3, 3), np.uint8))
    code = main(["run", "invert", str(tmp_path / "x" / "same.png"), str(tmp_path / "y" / "same.png")])
    assert code == 1 and "would both be written to" in capsys.readouterr().err


def test_a_missing_input_is_found_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "never"
    assert main(["run", "invert", str(tmp_path / "ghost.png"), "-o", str(out)]) == 1
    assert not out.exists()


def test_plugins_and_list_show_a_dataset_clash(capsys: pytest.CaptureFixture[str]) -> None:
    class Copycat:
        @imgzoo.hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            register("minifigs", lambda **options: [])

    imgzoo.register_plugin(Copycat(), name="copycat")

    assert main(["plugins"]) == 0
    assert "  clash: dataset 'minifigs' is also registered by 'copycat': unusable" in capsys.readouterr().out
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert "invert" in captured.out and "  minifigs:" not in captured.out
    clash = "dataset 'minifigs' is registered by 2 plugins, 'minifigs' (distribution imgzoo) and 'copycat'"
    assert f"imgzoo: warning: {clash}" in captured.err


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_list_with_every_task_clashing_says_why_and_fails(
    json_flag: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toy_tasks import ToyTasksPlugin

    imgzoo.register_plugin(ToyTasksPlugin(), name="twin")
    monkeypatch.setenv("IMGZOO_PLUGINS", "toy-tasks,twin")
    plugins.reload_plugins()

    assert main(["list", *json_flag]) == 1
    captured = capsys.readouterr()
    assert "imgzoo: warning: task 'invert' is registered by 2 plugins, 'toy-tasks' and 'twin'" in captured.err
    assert "imgzoo: error: no usable tasks: 2 names clash between plugins" in captured.err
    assert captured.out == ""


def test_list_with_every_plugin_failing_says_why_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Exiting:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            sys.exit(0)

    imgzoo.register_plugin(Exiting(), name="exiting")
    monkeypatch.setenv("IMGZOO_PLUGINS", "exiting")
    plugins.reload_plugins()

    assert main(["list", "inv*"]) == 1
    err = capsys.readouterr().err
    assert "plugin 'exiting' failed to load: SystemExit" in err
    assert "imgzoo: error: no usable tasks match 'inv*': plugin 'exiting' failed to load" in err


def test_list_of_an_empty_zoo_is_not_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMGZOO_PLUGINS", "none-of-them")
    plugins.reload_plugins()

    assert main(["list"]) == 0
    assert capsys.readouterr().out == "no tasks installed\n"


def test_info_shows_the_config_the_default_weights_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sha256 = write_invert_weights(tmp_path / "half.safetensors", gain=0.5)
    write_registry(tmp_path / "r.toml", "invert", {"half": ("half.safetensors", sha256)}, default="half")
    imgzoo.add_registry(tmp_path / "r.toml")

    assert main(["info", "invert"]) == 0
    out = capsys.readouterr().out
    assert "config (as the default weights 'half' use it):" in out
    assert "    gain = 0.5 (default weights; 1.0 without them): " in out
    assert main(["info", "invert", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["default_weights_config"]["gain"] == 0.5


def test_info_of_colorize_shows_the_image_size_its_weights_run_at(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "colorize"]) == 0
    out = capsys.readouterr().out
    assert "    image_size = 128 (default weights; 256 without them): " in out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
@pytest.mark.parametrize(
    ("inputs", "output"),
    [
        (["in"], "in/"),  # a folder written into itself
        (["in/a.png"], "in/a.png"),  # a file written over itself
        (["in/a.png"], "./in/a.png"),  # ... named another way
        (["in/a.png"], "link.png"),  # ... through a link to it
        (["in/sub/c.png"], "in/sub"),  # a result named like its input, in the input's folder
    ],
)
def test_run_never_replaces_an_input(
    inputs: list[str],
    output: str,
    overwrite: list[str],
    images_dir: Path,
    tmp_path: Path,
    invert_weights: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.png").symlink_to(images_dir / "a.png")
    before = _snapshot(images_dir)
    assert main(["run", "invert", *inputs, "-o", output, *overwrite]) == 1
    assert "would replace its input" in capsys.readouterr().err
    assert _snapshot(images_dir) == before


def test_run_replaces_an_existing_file_only_when_asked(
    tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.zeros((3, 3, 3), np.uint8))
    unrelated = tmp_path / "out" / "photo.png"
    unrelated.parent.mkdir()
    unrelated.write_bytes(b"someone else's file")
    argv = ["run", "invert", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "out")]
    assert main(argv) == 1
    assert "pass --overwrite to replace" in capsys.readouterr().err
    assert unrelated.read_bytes() == b"someone else's file"
    assert main([*argv, "--overwrite"]) == 0
    assert cv2.imread(str(unrelated)).min() == 255


def test_inputs_sharing_an_output_name_are_refused_before_anything_is_written(
    tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "x.png"), np.zeros((3, 3, 3), np.uint8))
    cv2.imwrite(str(folder / "x.jpg"), np.zeros((3, 3, 3), np.uint8))
    out = tmp_path / "out"
    assert main(["run", "invert", str(folder), "-o", str(out)]) == 1
    assert "would both be written to" in capsys.readouterr().err and not out.exists()


def test_run_reports_folders_it_cannot_search(
    images_dir: Path,
    tmp_path: Path,
    invert_weights: None,
    deny_reading: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (images_dir / "sub" / "loop").symlink_to(images_dir)
    locked = images_dir / "locked"
    locked.mkdir()
    cv2.imwrite(str(locked / "hidden.png"), np.zeros((3, 3, 3), np.uint8))
    deny_reading(locked)
    out = tmp_path / "out"
    assert main(["run", "invert", str(images_dir), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "2 folder(s) under" in err and "not searched" in err
    assert f"{locked} cannot be read: Permission denied" in err
    assert f"{images_dir / 'sub' / 'loop'} links to a folder searched already" in err
    assert len(list(out.rglob("*.png"))) == 5


def test_run_gives_the_reasons_before_the_summary(
    tmp_path: Path, invert_weights: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    monkeypatch.setattr(sys, "stderr", sys.stdout)  # one stream, so the order shows
    assert main(["run", "invert", str(tmp_path / "broken.png"), "-o", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("imgzoo: skipped: ") and "broken.png" in lines[0]
    assert lines[1:] == ["imgzoo: error: 1 of 1 inputs could not be read; nothing was written"]


@pytest.mark.parametrize("argv", [["run", "colorise", "x.png"], ["run", "colorize", "MISSING.png"]])
def test_run_answers_a_typo_without_importing_torch(argv: list[str], tmp_path: Path) -> None:
    script = "import sys; from imgzoo.cli import main; print(main(sys.argv[1:]), 'torch' in sys.modules)"
    argv = [str(tmp_path / a) if a.startswith("MISSING") else a for a in argv]
    completed = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60
    )
    assert completed.stdout.split() == ["1", "False"], completed.stderr
    assert completed.stderr.startswith("imgzoo: error: ")


def test_running_out_of_memory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((3, 3, 3), np.uint8))

    def forward(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(InvertTask, "forward", forward)
    assert main(["run", "invert", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("imgzoo: error:") == 1 and "needs more memory than there is" in err
    assert "Traceback" not in err


def test_run_over_a_folder_writes_the_bytes_one_image_at_a_time_writes(
    tmp_path: Path, invert_weights: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read ahead, batched by size and written behind, every result is the file a run on that
    image alone writes; unreadable files are reported in input order, before the summary."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{'sub/' if i % 4 == 3 else ''}img-{i:02d}.{'jpg' if i % 3 == 0 else 'png'}" for i in range(11)]
    for i, name in enumerate(names):
        size = (8, 12) if i % 2 else (10 + i, 7)  # half share a size and batch together
        assert cv2.imwrite(str(folder / name), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    for broken in ("img-04b.png", "img-09b.png"):
        (folder / broken).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert main(["run", "invert", str(folder), "-o", str(out), "--batch-size", "3"]) == 1
    captured = capsys.readouterr()
    for name in names:
        alone = tmp_path / "alone" / Path(name).with_suffix(".png")
        imgzoo.run("invert", folder / name, output=alone)
        assert (out / Path(name).with_suffix(".png")).read_bytes() == alone.read_bytes(), name
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        Path(name).with_suffix(".png").as_posix() for name in names
    )
    skipped = [line for line in captured.err.splitlines() if line.startswith("imgzoo: skipped:")]
    assert ["img-04b.png" in skipped[0], "img-09b.png" in skipped[1]] == [True, True]
    assert "img/s" in captured.err  # the progress bar counts images per second
    assert captured.err.rindex("imgzoo: skipped:") < captured.err.index("2 of 13 inputs could not be read")
    assert "wrote 11 images" in captured.out


def test_a_failed_write_stops_the_run_with_one_line(
    images_dir: Path,
    tmp_path: Path,
    invert_weights: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imgzoo import images

    def full_disk(target: Path, *args: object, **options: object) -> None:
        raise OSError(28, "No space left on device", str(target))

    monkeypatch.setattr(images, "save_result", full_disk)
    assert main(["run", "invert", str(images_dir), "-o", str(tmp_path / "out"), "--batch-size", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("imgzoo: error: [Errno 28] No space left on device")


SHARD_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import imgzoo
from imgzoo.cli import main
from toy_tasks import ToyTasksPlugin
imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
imgzoo.add_registry({registry!r})
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_torchrun_splits_a_folder_between_processes_without_collisions(
    tmp_path: Path, invert_weights: None
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(7):
        assert cv2.imwrite(str(folder / f"{i}.png"), np.full((5, 4 + i, 3), 30 * i, np.uint8))
    repo = Path(__file__).resolve().parent.parent
    script = tmp_path / "shard.py"
    paths = [str(repo / "core"), str(repo / "plugins"), str(repo / "tests")]
    script.write_text(SHARD_SCRIPT.format(paths=paths, registry=str(tmp_path / "r.toml")))
    out = tmp_path / "out"
    out.mkdir()
    cv2.imwrite(str(out / "3.png"), np.zeros((2, 2, 3), np.uint8))  # one result exists already
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*launch, str(script), "run", "invert", str(folder), "-o", str(out)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    options: dict[str, Any] = {"env": environment, "capture_output": True, "text": True, "timeout": 120}
    refused = subprocess.run(command, check=False, **options)
    # 3.png is the second process's (every other input, from the second): it alone refuses.
    assert refused.returncode != 0 and "3.png already exists: pass --overwrite" in refused.stderr
    done = subprocess.run([*command, "--overwrite"], check=False, **options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote 4 images to" in done.stdout and "(process 1 of 2)" in done.stdout
    assert "wrote 3 images to" in done.stdout and "(process 2 of 2)" in done.stdout
    assert sorted(path.name for path in out.iterdir()) == [f"{i}.png" for i in range(7)]
    for i in range(7):
        assert int(cv2.imread(str(out / f"{i}.png"))[0, 0, 0]) == 255 - 30 * i  # each one inverted once
