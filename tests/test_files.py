"""Atomic file writes: one way to replace a file, used by images, weights, downloads and exports."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import imgzoo
from imgzoo.files import replaced_atomically, write_atomically
from imgzoo.images import encode_pixels
from imgzoo.serve.app import encode_result


def test_a_finished_block_replaces_the_target_in_one_rename(tmp_path: Path) -> None:
    target = tmp_path / "new" / "file.bin"
    with replaced_atomically(target) as temporary:
        assert temporary.parent == target.parent and temporary.name.startswith(".file.bin.")
        temporary.write_bytes(b"new")
        assert not target.exists()  # nothing shows until the block ends
    assert target.read_bytes() == b"new" and os.listdir(target.parent) == ["file.bin"]


def test_a_failed_block_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    write_atomically(target, b"old")
    part = tmp_path / ".file.bin.download.part"
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        replaced_atomically(target, temporary=part) as temporary,
    ):
        temporary.write_bytes(b"half of the n")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["file.bin"]


def test_a_block_that_may_not_replace_leaves_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    with pytest.raises(FileExistsError), replaced_atomically(target, replace=False) as temporary:
        temporary.write_bytes(b"new")
        target.write_bytes(b"someone else's")  # after any check the caller made
    assert target.read_bytes() == b"someone else's" and os.listdir(tmp_path) == ["file.bin"]
    write_atomically(tmp_path / "fresh.bin", b"new", replace=False)
    assert (tmp_path / "fresh.bin").read_bytes() == b"new"


def test_the_server_and_save_image_encode_alike(tmp_path: Path) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, size=(4, 5, 4), dtype=np.uint8)
    saved = imgzoo.images.save_image(tmp_path / "a.png", rgba)
    assert saved.read_bytes() == encode_result(rgba, "png") == encode_pixels(rgba, ".png")
    decoded = cv2.imdecode(np.frombuffer(encode_result(rgba, "png"), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA), rgba)


def test_a_format_opencv_cannot_write_is_an_output_error() -> None:
    with pytest.raises(
        imgzoo.OutputError, match=r"cannot encode the result: OpenCV could not encode it as \.xyz"
    ):
        encode_pixels(np.zeros((2, 2, 3), np.uint8), ".xyz")
