"""Weights on disk: self-describing safetensors files, verified by sha256 before use.

A weights file holds one or more models' tensors, each named ``"{model}.{parameter}"`` (a GAN
task stores ``generator.*`` and ``discriminator.*`` side by side), plus metadata: any
JSON-serializable values, stored JSON-encoded because safetensors only keeps strings.

Every file imgzoo writes records its own digest under ``DIGEST_KEY``: the sha256 of its tensors
and other metadata, checked whenever it is loaded. So a damaged file is refused even when it is
loaded by path, with no registry entry to compare against; files without one (written by other
tools) load unchecked.

Where a file comes from is a *source* string (see `resolve_weights_file`): a local path, a
package resource, an http(s) URL, downloaded once into `cache_dir`, or a Hugging Face Hub address
``hf://OWNER/REPO[@REVISION]/PATH``, downloaded into the Hub's cache (:mod:`imgzoo.hub`).

torch is imported inside the functions that need it, so ``import imgzoo`` stays light and
`read_metadata` / `sha256_file` work without it. Nothing here ever unpickles: safetensors only.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.resources
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeAlias

from imgzoo.errors import ConfigError, WeightsError
from imgzoo.files import fsync_path, remove_abandoned, replaced_atomically, temporary_sibling
from imgzoo.hub import cached_hub_file, is_hub_address
from imgzoo.hub import download as hub_download

if TYPE_CHECKING:
    import torch

__all__ = [
    "cache_dir",
    "content_digest",
    "is_remote_source",
    "load_state",
    "load_weights",
    "local_weights_file",
    "offline_setting",
    "read_metadata",
    "read_tensors",
    "resolve_weights_file",
    "save_weights",
    "sha256_file",
    "state_tensors",
    "write_failure",
    "write_tensors",
]

StrPath: TypeAlias = "str | os.PathLike[str]"

#: Metadata key recording the layout version of imgzoo weights files.
FORMAT_KEY = "imgzoo.format"
FORMAT_VERSION = 1
#: Metadata key of the file's own digest (see `content_digest`), written by `write_tensors`.
DIGEST_KEY = "imgzoo.content_sha256"

# safetensors refuses headers above 100 MB; a larger length means the file is something else.
_MAX_HEADER_BYTES = 100_000_000
_CHUNK_BYTES = 1 << 20
_PROGRESS_MIN_BYTES = 1 << 20
ENV_TIMEOUT = "IMGZOO_DOWNLOAD_TIMEOUT"
ENV_DEADLINE = "IMGZOO_DOWNLOAD_DEADLINE"
_DEFAULT_TIMEOUT_S = 30.0
_DEFAULT_DEADLINE_S = 3600.0
# Far above any image-to-image model's weights; a registry entry's ``size`` is the tighter cap.
_MAX_DOWNLOAD_BYTES = 4 << 30
_STALE_PART_NS = 24 * 3600 * 1_000_000_000
_RECENT_WRITE_NS = 3_000_000_000
_TRUE_WORDS = {"1", "true", "yes", "on"}
# "package.name:path/in/package"; the package part is longer than one character so that a
# Windows drive ("C:\\weights") is never mistaken for a package.
_RESOURCE_SOURCE = re.compile(r"^(?P<package>[A-Za-z_]\w+(?:\.[A-Za-z_]\w*)*):(?P<resource>[^/\\].*)$")

_digest_memo: dict[tuple[str, int, int, int], str] = {}


def sha256_file(path: StrPath) -> str:
    """Hex sha256 of a file, streamed; remembered while the file is unchanged on disk."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    # Size, mtime and inode together change whenever the file is rewritten or replaced...
    key = (str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key in _digest_memo:
        return _digest_memo[key]
    digest = hashlib.sha256()
    with open(resolved, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    # ...except within the filesystem's timestamp granularity: a file modified that recently
    # could change again without its mtime moving, so it is not remembered yet (as git does).
    if time.time_ns() - stat.st_mtime_ns > _RECENT_WRITE_NS:
        _digest_memo[key] = digest.hexdigest()
    return digest.hexdigest()


def save_weights(
    path: StrPath,
    tensors: Mapping[str, torch.Tensor],
    *,
    metadata: Mapping[str, Any],
    dtype: torch.dtype | None = None,
) -> str:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically; return the file's sha256.

    ``dtype`` (``torch.float16`` for shipped weights) casts the floating tensors only. A reader
    never sees a half-written file: the data goes to a temporary file that replaces ``path``.
    A failed write (a full disk) is a WeightsError naming the file and its folder.
    """
    target = Path(path)
    try:
        write_tensors(target, tensors, metadata=metadata, dtype=dtype)
    except OSError as error:
        raise WeightsError(write_failure(target, error), path=target) from error
    return sha256_file(target)


def write_tensors(
    path: StrPath,
    tensors: Mapping[str, torch.Tensor],
    *,
    metadata: Mapping[str, Any],
    dtype: torch.dtype | None = None,
) -> None:
    """`save_weights` without hashing the file afterwards; a failed write raises OSError, whatever
    layer it came from."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    target = Path(path)
    encoded = {key: json.dumps(value) for key, value in metadata.items()}
    # Ours wins, so that metadata read from one file can be saved into another.
    encoded[FORMAT_KEY] = json.dumps(FORMAT_VERSION)
    standalone = _standalone_tensors(tensors, dtype)
    encoded[DIGEST_KEY] = json.dumps(content_digest(standalone, encoded))
    with replaced_atomically(target) as temporary:
        try:
            save_file(standalone, str(temporary), metadata=encoded)
        except SafetensorError as error:
            raise _as_os_error(error, temporary) from error
        # safetensors creates the file private (0o600); weights are meant to be shared.
        os.chmod(temporary, 0o666 & ~_umask())
    fsync_path(target.parent)


def write_failure(target: Path, error: OSError, *, instead: str = "write somewhere else") -> str:
    """The message for a write of ``target`` that failed with ``error``: what, where, and what to do."""
    reason = error.strerror or str(error)
    where = target.parent
    return f"cannot write {target}: {reason}; free some space in {where} (or make it writable), or {instead}"


def _as_os_error(error: Exception, path: Path) -> OSError:
    """safetensors' report of a failed write ("... No space left on device (os error 28) ...")
    as the OSError it wraps, so that callers handle every failed write alike."""
    code = re.search(r"\(os error (\d+)\)", str(error))
    if code is None:
        return OSError(errno.EIO, str(error), str(path))
    return OSError(int(code[1]), os.strerror(int(code[1])), str(path))


def content_digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """The digest a file records under ``DIGEST_KEY``: sha256 over its other metadata entries (as
    stored, JSON strings) and over each tensor's name, dtype, shape and raw bytes, in name order.

    Tensors are hashed where they lie in memory (no copy), once: about as cheap as reading them.
    """
    import torch

    digest = hashlib.sha256()
    others = {key: value for key, value in metadata.items() if key != DIGEST_KEY}
    digest.update(json.dumps(others, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_metadata(path: StrPath) -> dict[str, Any]:
    """The metadata of a weights file, values decoded from JSON; reads only the header."""
    header = _read_header(Path(path))
    return _decode_metadata(header.get("__metadata__"), Path(path))


def load_weights(
    path: StrPath, *, sha256: str | None = None, device: str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Verify (against ``sha256`` when given, and against the digest the file records) and load a
    weights file: ``(tensors, metadata)``. The one loader of weights for inference, training
    and export: a tensor with NaN or infinite values is refused here, whatever the route.

    Floating tensors come back as float32 whatever the file stores.
    """
    import torch

    source = Path(path)
    if not source.is_file():
        raise WeightsError(f"weights file {source} does not exist", path=source)
    if sha256 is not None:
        _verify_sha256(source, sha256)
    # A file whose sha256 matched is intact: no second pass over its bytes for its own digest.
    tensors, metadata = read_tensors(source, check_digest=sha256 is None)
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
            # Such weights give a plausible-looking picture, or a blank one, and no error.
            if not bool(torch.isfinite(tensor).all()):
                raise WeightsError(
                    f"{source}: tensor {name!r} holds NaN or infinite values (the training that made "
                    "it diverged?): use other weights",
                    path=source,
                    tensor=name,
                )
        tensors[name] = tensor.to(device)
    return tensors, metadata


def read_tensors(
    path: StrPath, *, check_digest: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of a safetensors file exactly as stored (dtypes kept, on the CPU) and its
    metadata, after checking them against the digest the file records, if it records one (and
    ``check_digest``: False when the whole file's sha256 was verified already)."""
    from safetensors import SafetensorError, safe_open

    source = Path(path)
    metadata = read_metadata(source)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(source), framework="pt", device="cpu") as file:
            stored_metadata = file.metadata() or {}
            for name in file.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensors[name] = file.get_tensor(name)
    except SafetensorError as error:
        raise WeightsError(
            f"{source}: not a readable safetensors file ({error}): it is corrupt or truncated; "
            "delete it and download or export it again",
            path=source,
        ) from error
    if check_digest and _digest_mismatch(tensors, metadata, stored_metadata):
        raise WeightsError(
            f"{source} is damaged: its tensors or metadata no longer match the digest recorded in it "
            "when it was written; delete it and download, export or copy it again",
            path=source,
        )
    return tensors, metadata


def _digest_mismatch(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], stored_metadata: Mapping[str, str]
) -> bool:
    """Whether a file's tensors and metadata disagree with the digest it records."""
    recorded = metadata.get(DIGEST_KEY)
    # A file records no digest when another tool wrote it, or when damage renamed the key: one
    # character off is taken for the latter.
    renamed = any(
        len(key) == len(DIGEST_KEY) and sum(map(str.__ne__, key, DIGEST_KEY)) == 1 for key in metadata
    )
    return renamed or (recorded is not None and content_digest(tensors, stored_metadata) != recorded)


def load_state(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], *, prefix: str, path: StrPath
) -> None:
    """Copy ``tensors["{prefix}.{name}"]`` into ``module``; every entry must match exactly.

    ``path`` is only used to name the file in errors.
    """
    expected = module.state_dict()
    head = f"{prefix}."
    given = {key.removeprefix(head): tensor for key, tensor in tensors.items() if key.startswith(head)}
    other_model = "the weights were saved from a different model"
    problems = [(name, "is missing from the file", other_model) for name in expected if name not in given]
    problems += [(name, "is not part of the model", other_model) for name in given if name not in expected]
    problems += [
        (
            name,
            f"has shape {tuple(tensor.shape)}, the model expects {tuple(expected[name].shape)}",
            "the weights were trained with a different config",
        )
        for name, tensor in given.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    if problems:
        name, problem, hint = problems[0]
        others = len(problems) - 1
        more = f" (and {others} more mismatched tensor{'s' * (others > 1)})" if others else ""
        raise WeightsError(
            f"{path}: tensor {head + name!r} {problem}{more}: {hint}", path=path, tensor=head + name
        )
    module.load_state_dict(given, strict=True)


def state_tensors(module: torch.nn.Module, *, prefix: str) -> dict[str, torch.Tensor]:
    """``module``'s state as ``{"{prefix}.{name}": tensor}``: detached contiguous CPU copies."""
    import torch

    return {
        f"{prefix}.{name}": tensor.detach().to("cpu", copy=True, memory_format=torch.contiguous_format)
        for name, tensor in module.state_dict().items()
    }


def resolve_weights_file(
    source: str, *, sha256: str | None, base_dir: Path | None = None, size: int | None = None
) -> Path:
    """Turn a weights source into a local file, downloading it into `cache_dir` if needed.

    ``source`` is an ``http(s)://`` URL, a Hugging Face Hub address
    ``hf://OWNER/REPO[@REVISION]/PATH`` (downloaded into the Hub's cache, see :mod:`imgzoo.hub`),
    a package resource ``"package.name:path/in/package"``, or a local path (relative ones are taken
    from ``base_dir``, e.g. the registry's folder).
    URL downloads are verified against ``sha256``; other files are verified by `load_weights`. A
    download stops with a WeightsError once it exceeds ``size`` bytes (when given; else 4 GiB) or
    what the server announced, or when it takes longer than ``$IMGZOO_DOWNLOAD_DEADLINE`` seconds
    (default an hour; ``$IMGZOO_DOWNLOAD_TIMEOUT``, default 30, bounds each wait for the server).
    A cached copy that no longer matches is downloaded again.
    Set ``IMGZOO_OFFLINE=1`` (for Hub addresses, ``HF_HUB_OFFLINE=1`` too) to forbid the network:
    then only cached files resolve.
    """
    if is_hub_address(source):
        return hub_download(source, offline=offline_setting())
    if is_remote_source(source):
        return _cached_download(source, sha256, size)
    resource = _RESOURCE_SOURCE.match(source)
    if resource:
        return _package_resource(resource["package"], resource["resource"])
    local = Path(source).expanduser()
    if base_dir is not None and not local.is_absolute():
        local = base_dir / local
    if not local.is_file():
        raise WeightsError(f"weights file {local} does not exist (from source {source!r})", path=local)
    return local


def is_remote_source(source: str) -> bool:
    """Whether a weights source is downloaded (an http(s) URL or a Hub address), not found on disk."""
    return is_hub_address(source) or urllib.parse.urlsplit(source).scheme in ("http", "https")


def local_weights_file(source: str, *, sha256: str | None, base_dir: Path | None = None) -> Path | None:
    """The file a weights source names if it is on this machine already (a URL's once it is
    cached), else None; never downloads. Like `resolve_weights_file`, it verifies nothing."""
    if is_hub_address(source):
        return cached_hub_file(source)
    if urllib.parse.urlsplit(source).scheme in ("http", "https"):
        cached = _cache_path(source, _normalized_sha256(sha256) if sha256 is not None else None)
        return cached if cached.is_file() else None
    try:
        return resolve_weights_file(source, sha256=sha256, base_dir=base_dir)
    except WeightsError:
        return None


def offline_setting() -> str | None:
    """The setting that forbids downloads (``"IMGZOO_OFFLINE=1"``), or None when downloads are allowed."""
    value = os.environ.get("IMGZOO_OFFLINE", "")
    return f"IMGZOO_OFFLINE={value}" if value.strip().lower() in _TRUE_WORDS else None


def cache_dir() -> Path:
    """Where downloaded weights live: ``$IMGZOO_CACHE``, else ``$XDG_CACHE_HOME/imgzoo``,
    else ``~/.cache/imgzoo``. Created on first use."""
    if os.environ.get("IMGZOO_CACHE"):
        folder = Path(os.environ["IMGZOO_CACHE"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        folder = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "imgzoo"
    else:
        folder = Path.home() / ".cache" / "imgzoo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _standalone_tensors(
    tensors: Mapping[str, torch.Tensor], dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors that each own their whole storage, as safetensors requires."""
    seen_storages: set[int] = set()
    result = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensor = tensor.contiguous()
        storage = tensor.untyped_storage()
        # Tied weights and views share storage; safetensors rejects them, so give each its own.
        if storage.data_ptr() in seen_storages or storage.nbytes() != tensor.nbytes:
            tensor = tensor.clone()
        seen_storages.add(tensor.untyped_storage().data_ptr())
        result[name] = tensor
    return result


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors header (8-byte little-endian length, then JSON), checked against the
    file's size so that truncation is caught without reading the data."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist", path=path)
    not_safetensors = WeightsError(f"{path} is not a safetensors weights file", path=path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise not_safetensors
        header_bytes = int.from_bytes(prefix, "little")
        if header_bytes > min(_MAX_HEADER_BYTES, size - 8):
            raise not_safetensors
        raw = file.read(header_bytes)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        # RecursionError: JSON nested deeper than Python's parser goes, which no real header is.
        raise not_safetensors from None
    if not isinstance(header, dict):
        raise not_safetensors
    try:
        data_bytes = max(
            (int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"),
            default=0,
        )
    except (TypeError, KeyError, IndexError, ValueError, OverflowError):
        raise not_safetensors from None
    if 8 + header_bytes + data_bytes > size:
        raise WeightsError(
            f"{path} is truncated ({size} bytes, {8 + header_bytes + data_bytes} expected): "
            "delete it and download or export it again",
            path=path,
        )
    return header


def _decode_metadata(raw: object, path: Path) -> dict[str, Any]:
    if raw is None:  # no metadata at all
        raw = {}
    # safetensors' format says string keys and string values; anything else is a damaged file.
    if not isinstance(raw, dict) or not all(isinstance(value, str) for value in raw.values()):
        raise WeightsError(
            f"{path} is not a valid safetensors weights file: its __metadata__ must map names to "
            "strings; export or download the file again",
            path=path,
        )
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except json.JSONDecodeError:
            # Files written by other tools store plain strings; keep them as they are.
            decoded[key] = value
        except RecursionError:
            raise WeightsError(
                f"{path}: metadata {key!r} is JSON nested too deeply to read; the file was not "
                "written by imgzoo: export or download it again",
                path=path,
            ) from None
    config = decoded.get("config", {})
    if not isinstance(config, dict):
        raise WeightsError(
            f"{path}: its metadata 'config' must be a table of settings, not {type(config).__name__}; "
            "export or download the file again",
            path=path,
        )
    version = decoded.get(FORMAT_KEY, FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise WeightsError(
            f"{path} has weights format {version!r}, this imgzoo reads up to {FORMAT_VERSION}: "
            "upgrade imgzoo",
            path=path,
        )
    return decoded


def _normalized_sha256(sha256: str) -> str:
    digest = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise WeightsError(f"{sha256!r} is not a sha256 digest (64 hex characters): fix the registry entry")
    return digest


def _verify_sha256(path: Path, sha256: str) -> None:
    expected = _normalized_sha256(sha256)
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(
            f"{path}: sha256 mismatch (expected {expected}, got {actual}). The file is corrupt, "
            "incomplete or another version: delete it so that it is downloaded again (or download "
            "or export it again by hand), or, if this file is the right one, fix the sha256 in the "
            "registry entry",
            path=path,
        )


def _package_resource(package: str, resource: str) -> Path:
    source = f"{package}:{resource}"
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as error:
        raise WeightsError(
            f"weights source {source!r}: package {package!r} is not installed", path=source
        ) from error
    located = root.joinpath(resource)
    if not isinstance(located, Path):
        raise WeightsError(
            f"weights source {source!r}: package {package!r} is not installed as plain files "
            "(a zip?): reinstall it unpacked, or point at the file by path",
            path=source,
        )
    if not located.is_file():
        raise WeightsError(f"weights source {source!r}: {located} does not exist", path=located)
    return located


def _cached_download(url: str, sha256: str | None, size: int | None) -> Path:
    """The cached copy of ``url``, downloaded and verified first if it is not cached yet (or if
    the cached copy is damaged)."""
    expected = _normalized_sha256(sha256) if sha256 is not None else None
    target = _cache_path(url, expected)
    cached = target.is_file()
    if cached and _is_intact(target, expected):
        return target
    offline = offline_setting()
    if offline is not None:
        state = "its cached copy is damaged" if cached else "it is not cached"
        raise WeightsError(
            f"offline mode is on ({offline}) and {url} is needed but {state}: "
            f"download it by hand to {target}, or unset IMGZOO_OFFLINE to let imgzoo download it",
            path=target,
        )
    # A damaged copy (a disk error, a hand edit) would otherwise fail every load until someone
    # deleted it by hand: it is downloaded again, once.
    target.unlink(missing_ok=True)
    # The partial downloads that no download will finish: those of processes that are gone
    # (killed mid-download), and any older than a day.
    remove_abandoned(target.parent, kind="part", older_than_ns=_STALE_PART_NS)
    part = temporary_sibling(target, kind="part")
    with replaced_atomically(target, temporary=part):
        _download(url, part, target, size)
        actual = sha256_file(part) if expected is not None else None
        if actual != expected:
            raise WeightsError(
                f"{url}: the downloaded file's sha256 is {actual}, the registry expects "
                f"{expected}: the file at the URL changed or the registry entry is wrong",
                path=url,
            )
        try:
            _read_header(part)
        except WeightsError:
            # Typically an HTML page (a login wall, a proxy's notice) served with status 200.
            raise WeightsError(f"{url} did not serve a safetensors file", path=url) from None
    return target


def _cache_path(url: str, sha256: str | None) -> Path:
    basename = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    basename = re.sub(r"[^\w.-]", "_", basename) or "weights.safetensors"
    # The digest in the name means a changed registry entry never reuses a stale file.
    key = sha256 or hashlib.sha256(url.encode()).hexdigest()
    return cache_dir() / f"{key[:16]}-{basename}"


def _is_intact(path: Path, sha256: str | None) -> bool:
    """Whether a cached download still is what was downloaded: its sha256 when known, else a
    readable header."""
    if sha256 is not None:
        return sha256_file(path) == sha256
    try:
        _read_header(path)
    except WeightsError:
        return False
    return True


def _seconds_from_environment(variable: str, default: float) -> float:
    """A positive, finite number of seconds from the environment variable, else ``default``."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(
            "", [(variable, f"must be a positive number of seconds, got {text!r}")], source="the environment"
        )
    return seconds


def _download(url: str, part: Path, target: Path, size: int | None) -> None:
    """Stream ``url`` into ``part``: at most ``size`` bytes when given (else `_MAX_DOWNLOAD_BYTES`)
    and no more than the server announced, within the environment's deadline."""
    from tqdm import tqdm

    timeout = _seconds_from_environment(ENV_TIMEOUT, _DEFAULT_TIMEOUT_S)
    deadline_s = _seconds_from_environment(ENV_DEADLINE, _DEFAULT_DEADLINE_S)
    deadline = time.monotonic() + deadline_s
    limit = size if size is not None else _MAX_DOWNLOAD_BYTES
    manual = f"download it another way and save it as {target}, or use a local path as the weights source"
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "xb") as file:
            total = _announced_length(response, url, manual)
            expected = (
                f"{size} bytes, the registry's size" if size is not None else f"the limit of {limit} bytes"
            )
            if total is not None and total > limit:
                raise WeightsError(f"{url} announces {total} bytes, more than {expected}: {manual}", path=url)
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=target.name,
                file=sys.stderr,
                disable=total is None or total <= _PROGRESS_MIN_BYTES,
                leave=False,
            ) as progress:
                # read1 returns what has arrived, so that a server dripping bytes meets the deadline.
                while chunk := response.read1(_CHUNK_BYTES):
                    received += len(chunk)
                    if received > limit:
                        raise WeightsError(f"{url} sent more than {expected}: {manual}", path=url)
                    if time.monotonic() > deadline:
                        raise WeightsError(
                            f"downloading {url} took over {deadline_s:g} s ({received} bytes so far; "
                            f"{ENV_DEADLINE} sets the limit): {manual}",
                            path=url,
                        )
                    file.write(chunk)
                    progress.update(len(chunk))
        if total is not None and received != total:
            raise HTTPException(f"connection closed after {received} of {total} bytes")
    except (OSError, HTTPException) as error:
        if isinstance(error, urllib.error.HTTPError):
            reason: object = f"HTTP {error.code} {error.reason}"
        elif isinstance(error, urllib.error.URLError):
            reason = error.reason
        else:
            reason = error
        raise WeightsError(f"could not download {url} ({reason}): {manual}", path=url) from error


def _announced_length(response: Any, url: str, manual: str) -> int | None:
    """The response's Content-Length, None when it has none."""
    text = response.headers.get("Content-Length")
    if text is None:
        return None
    if not text.strip().isdigit():
        raise WeightsError(f"{url} answered with a malformed Content-Length {text!r}: {manual}", path=url)
    return int(text)
