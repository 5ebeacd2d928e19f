"""imgzoo.images: every way an image comes in, goes out, or is refused with a useful message."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from imgzoo.errors import ConfigError, InvalidImageError, OutputError, ResultError
from imgzoo.images import (
    Image,
    declared_size,
    decode_image,
    load_image,
    read_images,
    save_image,
    to_output,
    to_uint8,
)

CORE = Path(__file__).resolve().parents[1] / "core"


def encode(suffix: str, rgb: np.ndarray) -> bytes:
    """Encode channels-last RGB(A) or gray pixels the way a file on disk would hold them."""
    if rgb.ndim == 3 and rgb.shape[2] in (3, 4):
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(suffix, rgb)
    assert ok
    return encoded.tobytes()


def noise(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def identity(images: list[Image]) -> list[np.ndarray]:
    """What a task that changes nothing would return: the colour channels, alpha set aside."""
    return [image.pixels for image in images]


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG whose header claims another size: a decompression bomb for the header check."""
    png = bytearray(encode(".png", noise(1, 1, 3)))
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(png[12:29]))  # the header chunk's checksum
    return bytes(png)


def jpeg_declaring(width: int, height: int) -> bytes:
    jpeg = bytearray(encode(".jpg", noise(8, 8, 3)))
    start_of_frame = jpeg.index(b"\xff\xc0")
    jpeg[start_of_frame + 5 : start_of_frame + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


def with_nan() -> np.ndarray:
    pixels = np.zeros((2, 2, 3), np.float32)
    pixels[1, 1, 1] = np.nan
    return pixels


BadInput = Callable[[Path], object]

BAD_INPUTS: list[tuple[str, BadInput, str]] = [
    ("missing file", lambda tmp: tmp / "missing-photo.png", "no such file: "),
    ("missing file named", lambda tmp: str(tmp / "missing-photo.png"), "missing-photo.png"),
    ("directory", lambda tmp: tmp, "is a directory"),
    ("empty file", lambda tmp: write(tmp / "empty.png", b""), "is empty (0 bytes)"),
    ("random bytes", lambda tmp: bytes(range(7, 250)) * 3, "is not a recognised image"),
    ("text file", lambda tmp: write(tmp / "notes.png", b"just some notes\n"), "is not a recognised image"),
    ("truncated png", lambda tmp: encode(".png", noise(32, 32, 3))[:1500], "truncated PNG"),
    ("truncated jpeg", lambda tmp: encode(".jpg", noise(32, 32, 3))[:-300], "truncated JPEG"),
    ("zero height", lambda tmp: np.zeros((0, 5), np.uint8), "is empty (shape (0, 5, 1))"),
    ("zero width", lambda tmp: np.zeros((5, 0, 3), np.uint8), "is empty (shape (5, 0, 3))"),
    ("two channels", lambda tmp: np.zeros((4, 4, 2), np.uint8), "has 2 channels"),
    ("five channels", lambda tmp: np.zeros((4, 4, 5), np.uint8), "has 5 channels"),
    ("channels first", lambda tmp: np.zeros((3, 8, 8), np.uint8), "transpose(1, 2, 0)"),
    ("tensor two channels", lambda tmp: torch.zeros(2, 4, 4), "has shape (2, 4, 4)"),
    ("tensor channels last", lambda tmp: torch.zeros(5, 6, 3), ".permute(2, 0, 1)"),
    ("tensor 5-D", lambda tmp: torch.zeros(1, 1, 3, 4, 4), "expected CxHxW or BxCxHxW"),
    ("tensor int64", lambda tmp: torch.zeros(3, 4, 4, dtype=torch.int64), "has dtype torch.int64"),
    ("1-D", lambda tmp: np.zeros(5, np.uint8), "has 1 dimensions"),
    ("5-D", lambda tmp: np.zeros((1, 1, 1, 1, 1), np.uint8), "has 5 dimensions"),
    ("nan", lambda tmp: with_nan(), "contains NaN"),
    ("inf", lambda tmp: np.full((2, 2), np.inf), "contains infinite values"),
    ("bool", lambda tmp: np.zeros((2, 2), bool), "has dtype bool; accepted: uint8, uint16"),
    ("int64", lambda tmp: np.zeros((2, 2), np.int64), "has dtype int64"),
    ("complex", lambda tmp: np.zeros((2, 2), complex), "has dtype complex128"),
    ("object", lambda tmp: np.zeros((2, 2), object), "has dtype object"),
    ("float of 0..255", lambda tmp: np.full((2, 2, 3), 200.0), "divide by 255"),
    ("negative float", lambda tmp: np.full((2, 2), -3.0), "must lie in [0, 1]"),
    ("huge png header", lambda tmp: png_declaring(100_000, 100_000), "over the limit of 67108864"),
    ("huge jpeg header", lambda tmp: jpeg_declaring(60_000, 60_000), "is 60000x60000 = 3600000000 pixels"),
    ("big jpeg header", lambda tmp: jpeg_declaring(10_000, 10_000), "is 10000x10000 = 100000000 pixels"),
    ("huge array", lambda tmp: np.broadcast_to(np.uint8(0), (20_000, 20_000)), "over the limit"),
    ("int", lambda tmp: 42, "cannot read a int as an image: pass a path"),
    ("dict", lambda tmp: {"image": 1}, "cannot read a dict"),
    ("None", lambda tmp: None, "cannot read a NoneType"),
    ("empty list", lambda tmp: [], "empty list: pass at least one image"),
    ("bad list item", lambda tmp: [np.zeros((2, 2), np.uint8), None], "as item #1"),
    ("nested list", lambda tmp: [[np.zeros((2, 2), np.uint8)]], "nested list"),
]


@pytest.mark.parametrize(
    ("make_input", "fragment"), [row[1:] for row in BAD_INPUTS], ids=[r[0] for r in BAD_INPUTS]
)
def test_bad_input_is_refused_with_a_message_that_says_why(
    tmp_path: Path, make_input: BadInput, fragment: str
) -> None:
    with pytest.raises(InvalidImageError) as caught:
        read_images(make_input(tmp_path))
    assert fragment in str(caught.value)
    assert "OpenCV(" not in str(caught.value)  # no assertion dumps leaking through


def test_pixel_limit_is_read_from_the_environment_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGZOO_MAX_PIXELS", "3")
    with pytest.raises(InvalidImageError, match="over the limit of 3"):
        read_images(np.zeros((2, 2), np.uint8))
    monkeypatch.setenv("IMGZOO_MAX_PIXELS", "lots")
    # A bad value is reported as every environment setting is, as a ConfigError naming it.
    with pytest.raises(ConfigError, match="IMGZOO_MAX_PIXELS: must be a positive integer"):
        read_images(np.zeros((2, 2), np.uint8))


def test_a_one_pixel_image_works() -> None:
    images, _ = read_images([np.full((1, 1, 3), 255, np.uint8), encode(".png", noise(1, 1, 3))])
    assert [(image.height, image.width, image.channels) for image in images] == [(1, 1, 3), (1, 1, 3)]
    np.testing.assert_array_equal(images[0].pixels, np.ones((1, 1, 3), np.float32))


def test_colours_come_out_in_rgb_order(tmp_path: Path) -> None:
    pure_red_in_bgr = np.zeros((2, 2, 3), np.uint8)
    pure_red_in_bgr[..., 2] = 255
    assert cv2.imwrite(str(tmp_path / "red.png"), pure_red_in_bgr)
    image = load_image(tmp_path / "red.png")
    np.testing.assert_array_equal(image.pixels[0, 0], [1.0, 0.0, 0.0])
    assert image.gray()[0, 0, 0] == pytest.approx(0.299)
    assert image.rgb() is image.pixels


def test_a_16_bit_png_keeps_16_bit_precision(tmp_path: Path) -> None:
    levels = np.array([[[0, 1, 2], [12345, 40000, 65535]]], np.uint16)
    image = decode_image(encode(".png", levels))
    np.testing.assert_array_equal(np.rint(image.pixels * 65535).astype(np.uint16), levels)
    saved = save_image(tmp_path / "deep.png", levels)
    np.testing.assert_array_equal(np.rint(load_image(saved).pixels * 65535).astype(np.uint16), levels)
    images, spec = read_images(levels)
    np.testing.assert_array_equal(to_output(identity(images), images, spec), levels)


def test_rgba_keeps_its_alpha_on_the_output() -> None:
    rgba = noise(3, 4, 4)
    images, spec = read_images(encode(".png", rgba))
    assert images[0].channels == 3 and images[0].alpha is not None
    np.testing.assert_array_equal(to_output(identity(images), images, spec), rgba)


def test_alpha_is_resized_to_a_larger_result_and_gray_results_become_rgba() -> None:
    rgba = noise(3, 4, 4)
    rgba[..., 3] = 64
    images, spec = read_images(rgba)
    doubled = to_output([np.zeros((6, 8, 3), np.float32)], images, spec)
    assert doubled.shape == (6, 8, 4)
    assert (doubled[..., 3] == 64).all()
    gray_with_alpha = to_output([np.zeros((3, 4, 1), np.float32)], images, spec)
    assert gray_with_alpha.shape == (3, 4, 4)
    np.testing.assert_array_equal(gray_with_alpha[..., 3], rgba[..., 3])


ROUND_TRIPS = {
    "uint8 rgb": noise(3, 4, 3),
    "uint16 rgb": noise(3, 4, 3).astype(np.uint16) * 257,
    "float32 rgb": noise(3, 4, 3).astype(np.float32) / 255,
    "float64 gray HxWx1": noise(3, 4, 1) / 255.0,
    "uint8 gray HxW": noise(3, 4),
    "uint8 rgba": noise(3, 4, 4),
    "non-contiguous view": noise(3, 8, 3)[:, ::2],
}


@pytest.mark.parametrize("array", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_numpy_comes_back_as_numpy_of_the_same_family(array: np.ndarray) -> None:
    images, spec = read_images(array)
    assert images[0].pixels.dtype == np.float32 and images[0].pixels.flags.c_contiguous
    output = to_output(identity(images), images, spec)
    expected_dtype = np.float32 if array.dtype.kind == "f" else array.dtype
    assert output.dtype == expected_dtype and output.shape == array.shape
    np.testing.assert_allclose(output, array, atol=1e-6)


def test_a_gray_2d_input_gets_a_colour_output_when_the_task_colourizes() -> None:
    images, spec = read_images(noise(3, 4))
    assert to_output([images[0].rgb()], images, spec).shape == (3, 4, 3)


def test_tensors_come_back_as_float32_tensors_batch_included() -> None:
    single = torch.rand(3, 5, 6, requires_grad=True)
    batch = torch.rand(2, 1, 5, 6, dtype=torch.float64)
    images, spec = read_images([single, batch, torch.full((3, 2, 2), 255, dtype=torch.uint8)])
    assert [image.source for image in images] == ["tensor #0", "tensor #1[0]", "tensor #1[1]", "tensor #2"]
    single_out, batch_out, uint8_out = to_output(identity(images), images, spec)
    assert single_out.shape == (3, 5, 6) and batch_out.shape == (2, 1, 5, 6)
    assert single_out.dtype == batch_out.dtype == torch.float32
    torch.testing.assert_close(single_out, single.detach())
    torch.testing.assert_close(batch_out, batch.float())
    torch.testing.assert_close(uint8_out, torch.ones(3, 2, 2))


def test_bytes_and_paths_come_back_as_uint8_arrays(tmp_path: Path) -> None:
    rgb = noise(3, 4, 3)
    png = encode(".png", rgb)
    inputs = (png, bytearray(png), write(tmp_path / "in.png", png), str(tmp_path / "in.png"))
    images, spec = read_images(inputs)
    outputs = to_output(identity(images), images, spec)
    assert isinstance(outputs, list) and len(outputs) == 4
    for output in outputs:
        assert output.dtype == np.uint8
        np.testing.assert_array_equal(output, rgb)
    assert images[2].source == str(tmp_path / "in.png")


def test_a_non_ascii_path_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "фото 写真.png", encode(".png", noise(2, 2, 3)))
    assert load_image(path).pixels.shape == (2, 2, 3)


def test_a_task_returning_nan_or_the_wrong_count_is_a_clear_error() -> None:
    images, spec = read_images(noise(2, 2, 3))
    with pytest.raises(ResultError, match="NaN or infinite"):
        to_output([np.full((2, 2, 3), np.nan, np.float32)], images, spec)
    with pytest.raises(ResultError, match="2 results for 1 images"):
        to_output(identity(images) * 2, images, spec)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff", ".webp"])
def test_save_then_load_gives_the_same_pixels(tmp_path: Path, suffix: str) -> None:
    rgb = noise(5, 7, 3)
    alpha = noise(5, 7)
    saved = save_image(tmp_path / "sub" / f"out{suffix}", rgb.astype(np.float32) / 255, alpha)
    assert saved.exists() and not list(saved.parent.glob(".*.tmp"))
    image = load_image(saved)
    if suffix == ".webp":  # default WEBP quality is lossy
        return
    np.testing.assert_array_equal(to_uint8(image.pixels), rgb)
    assert image.alpha is not None
    np.testing.assert_array_equal(to_uint8(image.alpha), alpha)


def test_save_as_jpeg_drops_alpha_and_gray_stays_gray(tmp_path: Path) -> None:
    assert load_image(save_image(tmp_path / "a.jpg", noise(4, 4, 4))).alpha is None
    assert load_image(save_image(tmp_path / "g.png", noise(4, 4))).channels == 1


def test_save_refuses_what_it_cannot_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = write(tmp_path / "file.txt", b"")
    with pytest.raises(OutputError, match=r"cannot write .*file\.txt/out\.png: .*writable"):
        save_image(a_file / "out.png", noise(2, 2, 3))
    with pytest.raises(OutputError, match=r"unknown suffix '\.xyz'"):
        save_image(tmp_path / "out.xyz", noise(2, 2, 3))
    with pytest.raises(InvalidImageError, match=r"alpha for .* must be HxW"):
        save_image(tmp_path / "out.png", noise(2, 2, 3), alpha=noise(3, 3))
    monkeypatch.setattr(cv2, "imencode", lambda *args: (False, None))
    with pytest.raises(OutputError, match=r"could not encode it as \.png"):
        save_image(tmp_path / "out.png", noise(2, 2, 3))
    assert not (tmp_path / "out.png").exists()


def test_importing_the_module_imports_neither_torch_nor_pil() -> None:
    code = "import imgzoo.images, sys; assert 'torch' not in sys.modules and 'PIL' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(CORE)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_pil_images_come_back_as_pil_images() -> None:
    pil = pytest.importorskip("PIL.Image")
    rgba = noise(3, 4, 4)
    inputs = [pil.fromarray(rgba), pil.fromarray(noise(3, 4)), pil.fromarray(noise(3, 4, 3)).convert("P")]
    images, spec = read_images(inputs)
    assert [image.channels for image in images] == [3, 1, 3]
    outputs = to_output(identity(images), images, spec)
    assert [output.mode for output in outputs] == ["RGBA", "L", "RGB"]
    np.testing.assert_array_equal(np.asarray(outputs[0]), rgba)


def test_a_decompression_bomb_is_refused_from_its_header_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMGZOO_MAX_PIXELS", raising=False)

    def imdecode(*args: object) -> None:
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    with pytest.raises(InvalidImageError, match=r"over the limit.*raise the limit with IMGZOO_MAX_PIXELS"):
        read_images(png_declaring(16_000, 16_000))  # a 0.75 MB file could hold this much


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_exif_orientation_is_honoured(tmp_path: Path, suffix: str, orientation: int) -> None:
    from PIL import Image as PILImage
    from PIL import ImageOps

    path = tmp_path / f"turned{suffix}"
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    stored = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    PILImage.fromarray(stored).save(path, exif=exif, lossless=True)
    shown = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    pixels = load_image(path).pixels
    np.testing.assert_array_equal(np.rint(pixels * 255).astype(np.uint8), shown)
    # the header's size is the shown one: a quarter turn swaps width and height
    assert declared_size(path.read_bytes()) == shown.shape[:2]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    # Before, opening it waited forever for a writer.
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InvalidImageError, match=r"pipe.png is not a regular file \(a pipe or a device\?\)"):
        read_images(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_device_is_refused_not_read_until_memory_runs_out() -> None:
    with pytest.raises(InvalidImageError, match="is not a regular file"):
        read_images("/dev/zero")


def test_a_file_longer_than_any_image_within_the_limit_is_refused_unread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A 1x1 PNG padded to 2 MiB: the pixels are fine, but the file is far more than 4 pixels need.
    monkeypatch.setenv("IMGZOO_MAX_PIXELS", "4")
    path = write(tmp_path / "padded.png", encode(".png", noise(1, 1, 3)) + bytes(2**21))
    with pytest.raises(InvalidImageError, match=r"padded.png is over 1048608 bytes, .*IMGZOO_MAX_PIXELS"):
        read_images(path)
    monkeypatch.delenv("IMGZOO_MAX_PIXELS")
    assert read_images(path)[0][0].width == 1


def test_a_path_too_long_for_the_system_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"cannot read .*: File name too long"):
        read_images(str(tmp_path / ("x" * 300 + ".png")))


@pytest.mark.parametrize(
    ("make_tensor", "fragment"),
    [
        (lambda: torch.zeros(3, 4, 4, device="meta"), "is on the meta device, so it holds no values"),
        (lambda: torch.zeros(3, 4, 4).to_sparse(), "has layout torch.sparse_coo: pass a dense tensor"),
        (
            lambda: torch.nested.nested_tensor([torch.zeros(3, 4, 4), torch.zeros(3, 5, 5)]),
            "is a nested tensor: pass a list of CxHxW tensors",
        ),
    ],
    ids=["meta", "sparse", "nested"],
)
@pytest.mark.filterwarnings("ignore:.*nested tensors is in prototype stage")
def test_a_tensor_without_plain_values_is_one_clear_error(
    make_tensor: Callable[[], torch.Tensor], fragment: str
) -> None:
    # Before, torch's own NotImplementedError, TypeError or RuntimeError came through.
    with pytest.raises(InvalidImageError, match=re.escape(f"tensor {fragment}")):
        read_images(make_tensor())


def test_an_oversized_tiff_is_refused_from_its_header_before_decoding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Before, only PNG, JPEG, BMP, GIF and WebP headers were read: a TIFF was decoded and run.
    monkeypatch.setenv("IMGZOO_MAX_PIXELS", "100")
    path = tmp_path / "big.tif"
    assert cv2.imwrite(str(path), np.zeros((20, 20, 3), np.uint8))
    monkeypatch.setattr(cv2, "imdecode", lambda *args: pytest.fail("decoded before the size check"))
    with pytest.raises(InvalidImageError, match=r"20x20 = 400 pixels, over the limit of 100"):
        load_image(path)


def test_a_format_whose_size_cannot_be_read_first_is_refused(tmp_path: Path) -> None:
    # OpenCV decodes PFM, but no header reader knows its size: it is refused, not decoded unchecked.
    path = tmp_path / "x.pfm"
    assert cv2.imwrite(str(path), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InvalidImageError, match="format whose size can be read before decoding"):
        load_image(path)


def test_the_header_size_of_a_picture_beyond_pillows_own_guard_is_still_read() -> None:
    # Pillow's Image.open refuses over 2 * PIL.Image.MAX_IMAGE_PIXELS without telling the size;
    # the server needs it (to answer 413 with the size) and a raised IMGZOO_MAX_PIXELS may allow it.
    assert declared_size(png_declaring(30_000, 20_000)) == (20_000, 30_000)


def test_an_oversized_webp_is_refused_from_its_header_before_decoding() -> None:
    # The one header reader knows WebP too, so a 20000x20000 canvas is refused unread.
    canvas = (19999).to_bytes(3, "little") * 2
    header = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8X" + struct.pack("<I", 10) + bytes(4) + canvas
    with pytest.raises(InvalidImageError, match="over the limit"):
        read_images(header)


OPENCV_LIMIT_SCRIPT = """
import cv2, numpy as np
import imgzoo
from imgzoo.errors import InvalidImageError
ok, tiff = cv2.imencode(".tiff", np.zeros((100, 100, 3), np.uint8))  # no size imgzoo reads first
try:
    imgzoo.load("colorize")(tiff.tobytes())
except InvalidImageError:
    print("refused")
"""


def test_opencv_refuses_formats_without_a_readable_header_beyond_the_limit() -> None:
    environment = {**os.environ, "IMGZOO_MAX_PIXELS": "1000"}
    environment.pop("OPENCV_IO_MAX_IMAGE_PIXELS", None)
    completed = subprocess.run(
        [sys.executable, "-c", OPENCV_LIMIT_SCRIPT],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "refused"  # decoding it whole would have needed 10,000 pixels
