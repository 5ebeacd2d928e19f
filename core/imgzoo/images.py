"""The one place where user images come in and results go out.

``read_images`` turns whatever the caller passed (a path, encoded bytes, a numpy array, a torch tensor,
a PIL image, or a list of these) into ``Image`` objects: HxWxC float32 RGB in [0, 1] with C = 1 or 3.
It also returns an ``OutputSpec`` so that ``to_output`` can hand the results back in the caller's form:

    numpy in   -> numpy out, same dtype family (uint8, uint16, float -> float32); a 2-D gray input gets a
                  2-D output when the result has one channel
    tensor in  -> float32 tensor on the input's device, CxHxW (a BxCxHxW batch stays a batch)
    PIL in     -> 8-bit PIL image (L, RGB or RGBA)
    path/bytes -> uint8 HxWxC numpy array
    list/tuple -> list, item by item (a batch tensor inside a list stays one batch tensor)

Alpha is set aside, the model sees the colour channels, and the alpha is put back on an image
output, resized to the output's size when that differs (a 2x result gets a 2x alpha). A one-channel
result that gets its alpha back comes out as RGBA, gray repeated, since gray+alpha is not a form
imgzoo reads.

A task's output is of one of two kinds (``Task.output_kind``). An "image" is clipped to [0, 1] and
returned as above. A "map" (depth, flow, a probability mask) keeps its float values: it comes back as
float32 whatever the input's dtype (numpy HxWxC, or HxW for a 2-D input and a one-channel map; a
float tensor for a tensor; numpy for a PIL image, which cannot hold such values), gets no alpha, and
is saved only as ``.npy``.

Float inputs must lie in [0, 1]; values up to 1/512 outside are taken as rounding error and clipped.
uint8 torch tensors are read as 0..255. Importing this module imports neither torch nor PIL; encoded
images' headers are read with Pillow, their pixels decoded with OpenCV.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import cv2
import numpy as np

from imgzoo.errors import ConfigError, InvalidImageError, OutputError, OutputExistsError, ResultError
from imgzoo.files import write_atomically
from imgzoo.formats import MAP_SUFFIX, MAX_PIXELS, SIXTEEN_BIT_SUFFIXES, WRITABLE_SUFFIXES

__all__ = [
    "LUMA_WEIGHTS",
    "MAX_PIXELS",
    "Image",
    "InputForm",
    "OutputSpec",
    "declared_size",
    "decode_image",
    "encode_pixels",
    "finish_result",
    "finished_output",
    "load_image",
    "luma",
    "out_of_memory",
    "read_images",
    "save_image",
    "save_result",
    "to_output",
    "to_uint8",
]

_BYTES_PER_PIXEL = 72  # the peak of the hungriest built-in task, colorize (see formats.MAX_PIXELS)
_CONVERSION_BAND = 2**22  # values converted at a time from float to 8 bits (16 MB of float32)
_EXIF_ORIENTATION = 0x0112  # the EXIF tag
_MOST_BYTES_PER_STORED_PIXEL = 8  # 16-bit RGBA, uncompressed
_ROUNDING_SLACK = 1 / 512  # under half an 8-bit step: resampling overshoot, not a wrong scale
_ACCEPTED = "a path, encoded bytes, a numpy array, a torch tensor or a PIL image (or a list of these)"


LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights of R, G and B in luma, applied to the stored (gamma-encoded) values as
OpenCV's RGB-to-gray conversion does."""

_Pixels = TypeVar("_Pixels", bound=Any)


def luma(image: _Pixels, *, channel_axis: int = -1) -> _Pixels:
    """The BT.601 gray of an image or batch (a numpy array or a torch tensor): its first three
    channels along ``channel_axis`` (RGB; alpha is ignored) weighted by :data:`LUMA_WEIGHTS`,
    that axis kept with size 1. A one-channel image is gray already and comes back as it is.
    ``channel_axis`` is -1 for HxWxC arrays, -3 for CxHxW or BxCxHxW tensors."""
    if image.shape[channel_axis] == 1:
        return image
    if isinstance(image, np.ndarray):
        channels_last = np.moveaxis(image, channel_axis, -1)[..., :3]
        gray = (channels_last @ np.asarray(LUMA_WEIGHTS, dtype=np.float32))[..., None]
        return np.moveaxis(gray, -1, channel_axis)  # type: ignore[return-value]
    axis = channel_axis % image.ndim
    red, green, blue = (image.narrow(axis, index, 1) for index in range(3))
    return LUMA_WEIGHTS[0] * red + LUMA_WEIGHTS[1] * green + LUMA_WEIGHTS[2] * blue


@dataclass
class Image:
    """One decoded image: ``pixels`` HxWxC float32 RGB in [0, 1] (C is 1 or 3), ``alpha`` HxW or None.

    ``stored`` holds the pixels as read: float32, or the 8/16-bit integers of an integer input,
    converted to float on first use of ``pixels`` (4 bytes a value instead of 1 or 2 until then,
    and never for a tiled run, which converts one :meth:`region` at a time).
    """

    stored: np.ndarray
    alpha: np.ndarray | None
    source: str  # where it came from, for error messages: a path, "array #2", "tensor[0]", ...
    path: Path | None = None  # the file it was read from, if any

    @property
    def pixels(self) -> np.ndarray:
        if self.stored.dtype != np.float32:
            self.stored = _to_float(self.stored)  # once: the integers are no longer needed
        return self.stored

    @pixels.setter
    def pixels(self, pixels: np.ndarray) -> None:
        self.stored = pixels

    def region(self, rows: slice, columns: slice) -> np.ndarray:
        """HxWxC float32 pixels of ``stored[rows, columns]``, converting only that region."""
        return _to_float(self.stored[rows, columns])

    @property
    def height(self) -> int:
        return int(self.stored.shape[0])

    @property
    def width(self) -> int:
        return int(self.stored.shape[1])

    @property
    def channels(self) -> int:
        return int(self.stored.shape[2])

    def rgb(self) -> np.ndarray:
        """HxWx3 float32; a gray image is repeated into all three channels."""
        return self.pixels if self.channels == 3 else np.repeat(self.pixels, 3, axis=2)

    def gray(self) -> np.ndarray:
        """HxWx1 float32 luma: ITU-R BT.601 weights on the stored (gamma-encoded) values, as OpenCV does."""
        if self.channels == 1:
            return self.pixels
        return np.ascontiguousarray(luma(self.pixels))


@dataclass(frozen=True)
class InputForm:
    """How one input was given, so its results can be returned the same way."""

    kind: str  # "numpy", "tensor", "pil" or "encoded" (a path or bytes)
    count: int = 1  # images it yielded: B for a BxCxHxW tensor
    dtype: str = "float32"  # numpy inputs: "uint8", "uint16" or "float32"
    was_2d: bool = False  # numpy HxW gray input
    batched: bool = False  # BxCxHxW tensor
    device: str = "cpu"  # tensor inputs


@dataclass(frozen=True)
class OutputSpec:
    """What ``read_images`` was given: one form per input, and whether they came as a list."""

    forms: tuple[InputForm, ...]
    as_list: bool


def read_images(obj: object, *, any_range: bool = False) -> tuple[list[Image], OutputSpec]:
    """Read one input or a list/tuple of inputs; raise InvalidImageError saying what is wrong.

    ``any_range``: float values are kept as given instead of being held to [0, 1] (a mask's
    or a map's values, which are not pictures)."""
    if not isinstance(obj, (list, tuple)):
        images, form = _read_one(obj, suffix="", any_range=any_range)
        return images, OutputSpec((form,), as_list=False)
    if not obj:
        raise InvalidImageError(f"got an empty {type(obj).__name__}: pass at least one image")
    images, forms = [], []
    for index, item in enumerate(obj):
        if isinstance(item, (list, tuple)):
            raise InvalidImageError(f"item #{index} is a nested {type(item).__name__}: pass a flat list")
        item_images, form = _read_one(item, suffix=f" #{index}", any_range=any_range)
        images += item_images
        forms.append(form)
    return images, OutputSpec(tuple(forms), as_list=True)


def to_output(results: list[np.ndarray], images: list[Image], spec: OutputSpec, kind: str = "image") -> Any:
    """Return ``results`` (HxWxC float32, one per image, of output ``kind`` "image" or "map") in
    the form the inputs came in."""
    if len(results) != len(images):
        raise ResultError(f"to_output got {len(results)} results for {len(images)} images: a task bug")
    finished = [finish_result(result, image, kind) for result, image in zip(results, images, strict=True)]
    return finished_output(finished, spec, kind)


def finished_output(finished: list[np.ndarray], spec: OutputSpec, kind: str = "image") -> Any:
    """:func:`to_output` for results :func:`finish_result` has finished already."""
    expected = sum(form.count for form in spec.forms)
    if len(finished) != expected:
        raise ResultError(f"to_output got {len(finished)} results for {expected} images: a task bug")
    outputs, start = [], 0
    for form in spec.forms:
        chunk = finished[start : start + form.count]
        outputs.append(_convert_map(chunk, form) if kind == "map" else _convert_output(chunk, form))
        start += form.count
    return outputs if spec.as_list else outputs[0]


def finish_result(result: np.ndarray, image: Image, kind: str = "image") -> np.ndarray:
    """A task's result for ``image`` as HxWxC float32, finite: an "image" clipped to [0, 1] with
    the input's alpha put back, a "map" as it is. A uint8 image result (from a task that
    ``takes_stored_pixels``) stays uint8, with its alpha as uint8."""
    if kind != "map" and result.dtype == np.uint8:
        pixels = result if result.ndim == 3 else result[..., None]
        if image.alpha is None or pixels.shape[2] == 4:
            return pixels
        # An RGBA result, rare: no lean path.
        return to_uint8(_with_alpha(_to_float(pixels), image, clip=False))
    pixels = np.asarray(result, dtype=np.float32)
    # NaN and infinities show in the extremes, without a mask the size of the picture; the same
    # two passes tell whether an image needs clipping.
    low, high = float(pixels.min()), float(pixels.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ResultError(
            f"the result for {image.source} contains NaN or infinite values: did the model diverge?"
        )
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels if kind == "map" else _with_alpha(pixels, image, clip=low < 0 or high > 1)


def save_result(
    path: str | os.PathLike[str], finished: np.ndarray, kind: str = "image", *, overwrite: bool = True
) -> Path:
    """Write a :func:`finish_result` output: an image in any format :func:`save_image` knows,
    a map as ``.npy`` (float32 HxWxC) only, since an image format would round or clip it.
    ``overwrite=False``: an OutputExistsError rather than replace a file of that name, even one
    created while the result was being written."""
    target = Path(path)
    if kind != "map":
        return save_image(target, finished, overwrite=overwrite)
    if target.suffix.lower() != MAP_SUFFIX:
        raise OutputError(
            f"cannot save {target}: the result is a float map, which {target.suffix or 'that format'} "
            f"cannot hold without rounding or clipping it; write it to a {MAP_SUFFIX} file",
            path=target,
        )
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(finished, dtype=np.float32), allow_pickle=False)
    _write_atomically(target, buffer.getvalue(), overwrite=overwrite)
    return target


def load_image(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> Image:
    """Read one image from a file path or from encoded bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(source)
    if isinstance(source, (str, os.PathLike)):
        image = decode_image(_read_file(Path(source)), source=str(source))
        image.path = Path(source)
        return image
    raise InvalidImageError(f"load_image takes a path or encoded bytes, not {type(source).__name__}")


def decode_image(data: bytes | bytearray | memoryview, source: str = "bytes") -> Image:
    """Decode an encoded image (PNG, JPEG, BMP, TIFF, WEBP, ...), checking its size and completeness first."""
    data = bytes(data)
    if not data:
        raise _invalid(source, "is empty (0 bytes)")
    header = _check_header(data, source)
    # IMREAD_UNCHANGED keeps alpha and 16 bits but ignores EXIF rotation; JPEGs have no alpha, so
    # they are read with flags that keep depth and gray while applying the camera's orientation.
    is_jpeg = header.format == "JPEG"
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if is_jpeg else cv2.IMREAD_UNCHANGED
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as error:  # OpenCV's own text is an assertion dump: keep it in the chain only
        raise _invalid(source, "could not be decoded: corrupt or unsupported") from error
    if decoded is None:
        raise _invalid(
            source, "is not a recognised image (or is corrupt): expected PNG, JPEG, TIFF, WEBP, ..."
        )
    if decoded.ndim == 3 and decoded.shape[2] in (3, 4):
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB if decoded.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    if header.format in ("PNG", "WEBP"):  # OpenCV applies a JPEG's and a TIFF's orientation itself
        decoded = _apply_orientation(decoded, header.orientation)
    return _image_from_array(decoded, source)


def _apply_orientation(pixels: np.ndarray, orientation: int | None) -> np.ndarray:
    """Turn and mirror stored pixels (HxW or HxWxC) the way EXIF orientation 1-8 says to show them."""
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        if orientation in (5, 6, 7, 8):  # these first mirror along the main diagonal
            pixels = pixels.swapaxes(0, 1)
        flip_rows = orientation in (3, 4, 7, 8)
        flip_columns = orientation in (2, 3, 6, 7)
        pixels = pixels[:: -1 if flip_rows else 1, :: -1 if flip_columns else 1]
    return pixels


def save_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Write RGB(A) or gray pixels (float in [0, 1], uint8 or uint16) atomically; format from the suffix.

    uint16 stays 16-bit in PNG and TIFF; everything else is written as 8-bit. JPEG drops alpha.
    ``overwrite=False``: an OutputExistsError rather than replace a file of that name, even one
    created while the image was being written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise OutputError(
            f"cannot save {target}: unknown suffix {suffix!r}; use one of {' '.join(WRITABLE_SUFFIXES)}",
            path=target,
        )
    image = _image_from_array(np.asarray(pixels), f"pixels for {target}")
    if alpha is not None:
        alpha_image = _image_from_array(np.asarray(alpha), f"alpha for {target}")
        if image.alpha is not None or alpha_image.pixels.shape[:2] != image.pixels.shape[:2]:
            raise _invalid(alpha_image.source, f"must be HxW like RGB or gray pixels, got {np.shape(alpha)}")
        image.alpha = alpha_image.pixels[..., 0]
    kept_alpha = None if suffix in (".jpg", ".jpeg") else image.alpha
    layers = [image.pixels] if kept_alpha is None else [image.rgb(), kept_alpha[..., None]]
    stacked = np.concatenate(layers, axis=2)
    wide = suffix in SIXTEEN_BIT_SUFFIXES and np.asarray(pixels).dtype == np.uint16
    encodable = _to_uint16(stacked) if wide else to_uint8(stacked)
    _write_atomically(target, encode_pixels(encodable, suffix, path=target), overwrite=overwrite)
    return target


def encode_pixels(pixels: np.ndarray, suffix: str, *, path: Path | None = None) -> bytes:
    """uint8 or uint16 HxWxC pixels (gray, RGB or RGBA) encoded in the format of ``suffix``
    (``".png"``); an OutputError naming ``path``, the file they are for, when OpenCV cannot."""
    if pixels.shape[2] > 1:
        to_bgr = cv2.COLOR_RGB2BGR if pixels.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        pixels = cv2.cvtColor(pixels, to_bgr)
    subject = f"cannot save {path}" if path is not None else "cannot encode the result"
    cannot_encode = f"{subject}: OpenCV could not encode it as {suffix}"
    try:
        ok, encoded = cv2.imencode(suffix, pixels)
    except cv2.error as error:
        raise OutputError(cannot_encode, path=path) from error
    if not ok:
        raise OutputError(cannot_encode, path=path)
    return bytes(encoded.tobytes())


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float [0, 1], uint8 or uint16 pixels as uint8, rounded to nearest (uint8 comes back as is)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    converted = np.empty(pixels.shape, np.uint8)
    # A band of rows at a time: whole-image float temporaries would be 4 bytes a value, each.
    rows = max(1, _CONVERSION_BAND // max(1, pixels[:1].size))
    for start in range(0, len(pixels), rows):
        band = np.clip(pixels[start : start + rows], 0.0, 1.0)
        band *= 255.0
        converted[start : start + rows] = np.rint(band, out=band)
    return converted


def _to_uint16(pixels: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(pixels, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _invalid(source: str, problem: str) -> InvalidImageError:
    """The error for ``source``; ``problem`` finishes the sentence that starts with its name."""
    return InvalidImageError(f"{source} {problem}", source=source)


def out_of_memory(images: list[Image], doing: str) -> InvalidImageError:
    """The error for running out of memory while ``doing`` something with ``images``."""
    largest = max(images, key=lambda image: image.width * image.height)
    batch = f" (in a batch of {len(images)}: try a smaller batch size)" if len(images) > 1 else ""
    return _invalid(
        largest.source,
        f"({largest.width}x{largest.height}) needs more memory than there is, {doing}{batch}; use a "
        f"smaller image, or lower IMGZOO_MAX_PIXELS (now {_pixel_limit()}) to refuse such images "
        "before they are decoded",
    )


def _pixel_limit() -> int:
    configured = os.environ.get("IMGZOO_MAX_PIXELS", "").strip()
    if not configured:
        return MAX_PIXELS
    if not configured.isdigit() or int(configured) == 0:
        raise ConfigError(
            "",
            [("IMGZOO_MAX_PIXELS", f"must be a positive integer, got {configured!r}")],
            source="the environment",
        )
    return int(configured)


def _unreadable(path: Path, error: OSError) -> InvalidImageError:
    return InvalidImageError(f"cannot read {path}: {error.strerror or error}", source=str(path))


def _max_file_bytes() -> int:
    """The largest image file read: one holding the most pixels accepted as 16-bit RGBA, stored
    uncompressed, plus room for its metadata."""
    return _pixel_limit() * _MOST_BYTES_PER_STORED_PIXEL + 2**20


def _check_pixel_count(height: int, width: int, source: str) -> None:
    limit = _pixel_limit()
    if height * width > limit:
        problem = f"is {width}x{height} = {height * width} pixels, over the limit of {limit}"
        raise _invalid(
            source,
            f"{problem}: processing it could take {height * width * _BYTES_PER_PIXEL / 1e9:.1f} GB of "
            "memory; if you trust the image and have the memory, raise the limit with IMGZOO_MAX_PIXELS",
        )


def _read_one(obj: object, suffix: str, *, any_range: bool = False) -> tuple[list[Image], InputForm]:
    """Read one non-list input; ``suffix`` (" #2") tells list items apart in messages."""
    module = type(obj).__module__
    if isinstance(obj, (str, os.PathLike)):
        return [load_image(obj)], InputForm("encoded")
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return [decode_image(obj, source="bytes" + suffix)], InputForm("encoded")
    if isinstance(obj, np.ndarray):
        image = _image_from_array(obj, "array" + suffix, any_range=any_range)
        dtype = obj.dtype.name if obj.dtype.kind == "u" else "float32"
        return [image], InputForm("numpy", dtype=dtype, was_2d=obj.ndim == 2)
    if module.startswith("torch") and hasattr(obj, "detach"):
        return _read_tensor(obj, "tensor" + suffix, any_range=any_range)
    if module.startswith("PIL.") and hasattr(obj, "mode"):
        source = "PIL image" + suffix
        return [_image_from_array(_pil_to_array(obj, source), source, any_range=any_range)], InputForm("pil")
    where = f" as item{suffix}" if suffix else ""
    raise InvalidImageError(f"cannot read a {type(obj).__name__}{where} as an image: pass {_ACCEPTED}")


def _read_file(path: Path) -> bytes:
    """The bytes of the regular file ``path``, at most :func:`_max_file_bytes` of them."""
    if "\x00" in str(path):  # the OS cannot even be asked about such a name
        raise InvalidImageError(
            f"the path {str(path)!r} contains a NUL byte: give a valid file name", source=str(path)
        )
    try:
        # Not cv2.imread: it fails silently, and on non-ASCII paths. O_NONBLOCK, so that opening a
        # FIFO that no one writes to returns at once (to be refused below) instead of waiting.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as error:
        raise InvalidImageError(f"no such file: {path}", source=str(path)) from error
    except IsADirectoryError as error:  # Windows; elsewhere a folder opens, and fstat tells
        raise _invalid(str(path), "is a directory, not an image file") from error
    except OSError as error:  # a name too long, a permission, ...
        raise _unreadable(path, error) from error
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise _invalid(str(path), "is a directory, not an image file")
        # A FIFO or a device (/dev/zero) could be read forever.
        raise _invalid(str(path), "is not a regular file (a pipe or a device?): give an image file")
    with os.fdopen(descriptor, "rb") as file:
        limit = _max_file_bytes()
        expected = min(status.st_size, limit)
        try:
            data = file.read(expected + 1)  # + 1 sees a file longer than it said
            if len(data) > expected:  # growing, or one that tells no size (/proc): on to the limit
                data += file.read(limit + 1 - len(data))
        except OSError as error:
            raise _unreadable(path, error) from error
    if len(data) > limit:
        raise _invalid(
            str(path),
            f"is over {limit} bytes, more than an image within the pixel limit ({_pixel_limit()}) needs: "
            "if you trust the file, raise the limit with IMGZOO_MAX_PIXELS",
        )
    return data


def _image_from_array(array: np.ndarray, source: str, *, any_range: bool = False) -> Image:
    """Validate a channels-last RGB(A) or gray array and normalise it to float32 in [0, 1]
    (``any_range``: floats kept as they are, only required to be finite)."""
    if not array.dtype.isnative:  # big-endian data, e.g. from a PIL 'I;16B' image
        array = array.astype(array.dtype.newbyteorder("="))
    dtype = array.dtype
    if dtype not in (np.uint8, np.uint16) and dtype.kind != "f":
        raise _invalid(source, f"has dtype {dtype}; accepted: uint8, uint16, or float16/32/64 in [0, 1]")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        hint = "; pass a batch as a list of arrays" if array.ndim == 4 else ""
        raise _invalid(
            source, f"has {array.ndim} dimensions (shape {array.shape}); expected HxW or HxWxC{hint}"
        )
    height, width, channels = array.shape
    if channels not in (1, 3, 4):
        hint = "; it looks channels-first: use arr.transpose(1, 2, 0)" if height in (1, 3, 4) else ""
        raise _invalid(source, f"has {channels} channels (shape {array.shape}); expected 1, 3 or 4{hint}")
    if height == 0 or width == 0:
        raise _invalid(source, f"is empty (shape {array.shape})")
    _check_pixel_count(height, width, source)
    if dtype.kind == "u":
        # Kept as integers (a copy: the caller may change its array) and converted when used.
        scaled = np.array(array, copy=True)
    else:
        if np.isnan(array).any():
            raise _invalid(source, "contains NaN values")
        if np.isinf(array).any():
            raise _invalid(source, "contains infinite values")
        low, high = float(array.min()), float(array.max())
        if any_range:
            scaled = array.astype(np.float32)
        elif low < -_ROUNDING_SLACK or high > 1 + _ROUNDING_SLACK:
            hint = "divide by 255 if these are 8-bit values" if low >= 0 and high <= 255 else "rescale them"
            raise _invalid(
                source, f"has values from {low:g} to {high:g}, but floats must lie in [0, 1]: {hint}"
            )
        else:
            scaled = np.clip(array, 0.0, 1.0).astype(np.float32)
    alpha = _to_float(np.ascontiguousarray(scaled[..., 3])) if channels == 4 else None
    return Image(np.ascontiguousarray(scaled[..., :3] if channels == 4 else scaled), alpha, source)


def _to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 values (or float32 ones, returned as they are) as float32 in [0, 1]."""
    if pixels.dtype == np.float32:
        return pixels
    scaled = pixels.astype(np.float32)
    return np.divide(scaled, np.float32(np.iinfo(pixels.dtype).max), out=scaled)  # in place: no second copy


def _read_tensor(tensor: Any, source: str, *, any_range: bool = False) -> tuple[list[Image], InputForm]:
    import torch

    # These hold no plain block of values to read: say so before torch fails in its own words.
    if tensor.is_nested:
        raise _invalid(source, "is a nested tensor: pass a list of CxHxW tensors instead")
    if tensor.is_meta:
        raise _invalid(source, "is on the meta device, so it holds no values: pass a tensor with data")
    if tensor.layout != torch.strided:
        raise _invalid(source, f"has layout {tensor.layout}: pass a dense tensor (call .to_dense())")
    values = tensor.detach().cpu()
    if values.dtype != torch.uint8 and not values.is_floating_point():
        raise _invalid(source, f"has dtype {values.dtype}; accepted: float in [0, 1] or uint8 (0..255)")
    shape = tuple(values.shape)
    if values.ndim not in (3, 4) or shape[-3] not in (1, 3, 4):
        channels_last = values.ndim == 3 and shape[-1] in (1, 3, 4)
        hint = "; it looks channels-last: use .permute(2, 0, 1)" if channels_last else ""
        raise _invalid(source, f"has shape {shape}; expected CxHxW or BxCxHxW with C = 1, 3 or 4{hint}")
    if values.ndim == 4 and shape[0] == 0:
        raise _invalid(source, f"is an empty batch (shape {shape})")
    if values.is_floating_point():
        values = values.float()  # numpy has no bfloat16
    batch = values.numpy() if values.ndim == 4 else values.numpy()[None]
    names = [f"{source}[{i}]" for i in range(len(batch))] if values.ndim == 4 else [source]
    images = [
        _image_from_array(item.transpose(1, 2, 0), name, any_range=any_range)
        for item, name in zip(batch, names, strict=True)
    ]
    return images, InputForm("tensor", len(images), batched=values.ndim == 4, device=str(tensor.device))


def _pil_to_array(picture: Any, source: str) -> np.ndarray:
    mode = picture.mode
    if mode.startswith("I;16") or mode in ("L", "RGB", "RGBA"):
        return np.asarray(picture)
    if mode == "F":
        return np.asarray(picture, dtype=np.float32)
    if mode == "I":  # 32-bit integers; Pillow opens some 16-bit PNGs this way
        values = np.asarray(picture)
        if values.min() < 0 or values.max() > 65535:
            raise _invalid(source, "is in mode 'I' with values outside 0..65535")
        return values.astype(np.uint16)
    has_alpha = mode in ("LA", "La", "PA", "RGBa") or "transparency" in picture.info
    return np.asarray(picture.convert("RGBA" if has_alpha else "L" if mode == "1" else "RGB"))


def _with_alpha(pixels: np.ndarray, image: Image, *, clip: bool) -> np.ndarray:
    """HxWxC pixels clipped to [0, 1] (``clip``: some lie outside), with the input's alpha put
    back at the pixels' size."""
    if clip:  # a copy only when needed: 805 MB at 8192² RGB
        pixels = np.clip(pixels, 0.0, 1.0)
    if image.alpha is None or pixels.shape[2] == 4:
        return pixels
    alpha = image.alpha
    if alpha.shape != pixels.shape[:2]:
        shrinking = alpha.shape[0] >= pixels.shape[0] and alpha.shape[1] >= pixels.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        alpha = np.clip(cv2.resize(alpha, pixels.shape[1::-1], interpolation=interpolation), 0.0, 1.0)
    color = pixels if pixels.shape[2] == 3 else np.repeat(pixels, 3, axis=2)
    return np.concatenate([color, alpha[..., None]], axis=2)


def _convert_map(results: list[np.ndarray], form: InputForm) -> Any:
    """Float maps in the input's form, float32 throughout (see the module docstring)."""
    if form.kind == "tensor":
        return _convert_output(results, form)
    values = results[0]
    return values[..., 0] if form.was_2d and values.shape[2] == 1 else values


def _convert_output(results: list[np.ndarray], form: InputForm) -> Any:
    if form.kind not in ("encoded", "pil") and form.dtype != "uint8":
        results = [_to_float(result) for result in results]  # 8-bit results of a lean task
    if form.kind == "encoded":
        return to_uint8(results[0])
    if form.kind == "numpy":
        pixels = results[0][..., 0] if form.was_2d and results[0].shape[2] == 1 else results[0]
        if form.dtype == "uint8":
            return to_uint8(pixels)
        return _to_uint16(pixels) if form.dtype == "uint16" else pixels
    if form.kind == "pil":
        from PIL import Image as PILImage

        pixels = to_uint8(results[0])
        return PILImage.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(r.transpose(2, 0, 1))).to(form.device) for r in results]
    if not form.batched:
        return tensors[0]
    if len({t.shape for t in tensors}) > 1:
        raise ResultError("results of one batch differ in size, so they cannot be stacked: a task bug")
    return torch.stack(tensors)


@dataclass(frozen=True)
class _Header:
    """What an encoded image's header says, read by Pillow without decoding the pixels."""

    format: str  # Pillow's name for it: "PNG", "JPEG", "TIFF", ...
    height: int  # as stored, before the EXIF orientation
    width: int
    orientation: int | None  # EXIF orientation 1-8, or None

    @property
    def shown_size(self) -> tuple[int, int]:
        """``(height, width)`` once the orientation is applied (5-8 turn the picture by 90°)."""
        return (self.width, self.height) if self.orientation in (5, 6, 7, 8) else (self.height, self.width)


def _read_header(file: BinaryIO | Path, source: str) -> _Header:
    """The header of an encoded image, through Pillow's lazy ``open``, which reads the header of
    every format it knows and decodes nothing. A format whose size cannot be read this way is
    refused: its pixel count could not be checked before decoding."""
    from PIL import Image as PILImage

    try:
        # Pillow warns of sizes over its own limit; imgzoo's (IMGZOO_MAX_PIXELS) is checked next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(file) as picture:
                width, height = picture.size
                # The base method reads the EXIF the header gave; PNG's own decodes the whole
                # picture to look for an eXIf chunk after the pixels.
                orientation = PILImage.Image.getexif(picture).get(_EXIF_ORIENTATION)
                kind = picture.format or "unknown"
    except PILImage.DecompressionBombError:
        # Over Pillow's own guard, which does not tell the size: the format's reader does, and
        # imgzoo's limit is checked on it. Such a picture's orientation is not looked for.
        found = _size_past_pillows_guard(file)
        if found is None:  # a reader that applies the guard itself (WebP's)
            bound = 2 * (PILImage.MAX_IMAGE_PIXELS or 0)
            raise _invalid(
                source,
                f"declares more than {bound} pixels, over the limit of {min(bound, _pixel_limit())}: "
                "Pillow refuses to read such a file (PIL.Image.MAX_IMAGE_PIXELS sets its limit)",
            ) from None
        height, width, kind = found
        return _Header(kind, height, width, None)
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise _invalid(
            source,
            "is not a recognised image (or is corrupt): expected PNG, JPEG, TIFF, WebP, BMP or another "
            "format whose size can be read before decoding",
        ) from error
    turned = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None
    return _Header(kind, int(height), int(width), turned)


def _size_past_pillows_guard(file: BinaryIO | Path) -> tuple[int, int, str] | None:
    """``(height, width, format)`` of a picture that ``Image.open`` refuses as a decompression
    bomb: the reader of its format, found as ``Image.open`` finds it, reads the header without
    that guard (imgzoo's own pixel limit is lower, and is checked on the size). None when the
    reader applies the guard itself."""
    from PIL import Image as PILImage

    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(open(file, "rb")) if isinstance(file, Path) else file
        stream.seek(0)
        prefix = stream.read(16)
        for format_id in PILImage.ID:
            factory, accept = PILImage.OPEN[format_id]
            if accept is not None and accept(prefix) is not True:
                continue
            stream.seek(0)
            try:
                picture = factory(stream, "")
            except PILImage.DecompressionBombError:
                return None
            except (SyntaxError, IndexError, TypeError, ValueError, EOFError, OSError, struct.error):
                continue  # not this format, as Image.open finds out
            width, height = picture.size
            return int(height), int(width), picture.format or format_id
    raise AssertionError("Pillow refused a picture that none of its readers reads")  # it read it


def _check_header(data: bytes, source: str) -> _Header:
    """The header of ``data``, once its size is within the pixel limit and, for a PNG or a JPEG,
    the file is complete; an InvalidImageError before anything is decoded otherwise."""
    header = _read_header(io.BytesIO(data), source)
    _check_pixel_count(header.height, header.width, source)
    if header.format == "PNG":
        _require_png_end(data, source)
    elif header.format == "JPEG":
        _require_jpeg_end(data, source)
    return header


def declared_size(data: bytes | bytearray | memoryview | Path, source: str = "bytes") -> tuple[int, int]:
    """``(height, width)`` of an encoded image (bytes, or a file) as it will be shown, EXIF
    orientation applied, read from its header without decoding; an InvalidImageError when its
    format's size cannot be read that way."""
    file = data if isinstance(data, Path) else io.BytesIO(data)
    return _read_header(file, source).shown_size


def _truncated(source: str, kind: str) -> InvalidImageError:
    return _invalid(source, f"is a truncated {kind} file (an incomplete download or copy?)")


def _require_png_end(data: bytes, source: str) -> None:
    position = 8
    while len(data) >= 33 and position + 8 <= len(data):  # walk the chunks: an intact PNG reaches IEND
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IEND":
            return
        position += 12 + length
    raise _truncated(source, "PNG")


def _require_jpeg_end(data: bytes, source: str) -> None:
    position = 2
    while position + 4 <= len(data):  # walk the header segments up to the start of scan
        marker = data[position + 1]
        if data[position] != 0xFF:
            return  # not a well-formed marker: leave the verdict to the decoder
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            position += 1 if marker == 0xFF else 2  # a fill byte, or a marker without a length
            continue
        if marker == 0xDA:
            # an intact JPEG ends with EOI; searching after SOS skips the EOI of any EXIF thumbnail
            if data.find(b"\xff\xd9", position) < 0:
                raise _truncated(source, "JPEG")
            return
        position += 2 + struct.unpack_from(">H", data, position + 2)[0]
    raise _truncated(source, "JPEG")


def _write_atomically(target: Path, content: bytes, *, overwrite: bool) -> None:
    try:
        write_atomically(target, content, replace=overwrite)
    except FileExistsError as error:
        raise OutputExistsError(
            f"{target} appeared while the result was being written: pass --overwrite (overwrite=True) "
            "to replace it, or choose another output",
            path=target,
        ) from error
    except OSError as error:
        reason = error.strerror or error
        raise OutputError(
            f"cannot write {target}: {reason}; check that the folder is writable", path=target
        ) from error
