"""Weights files: save/load, verification, state copying, and every way a file is resolved."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from imgzoo import weights
from imgzoo.errors import ConfigError, WeightsError
from imgzoo.files import temporary_sibling
from imgzoo.weights import (
    cache_dir,
    load_state,
    load_weights,
    read_metadata,
    resolve_weights_file,
    save_weights,
    sha256_file,
    state_tensors,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
METADATA = {"task": "colorize", "config": {"width": 64, "blocks": [1, 2, 3], "dropout": 0.5}, "ok": True}


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IMGZOO_OFFLINE", raising=False)
    # The test server is on 127.0.0.1: never route it through a proxy set in the environment.
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


def sample_tensors() -> dict[str, torch.Tensor]:
    generator = torch.linspace(-2, 2, 12)
    return {
        "generator.weight": generator.reshape(4, 3),
        "generator.steps": torch.tensor([7], dtype=torch.int64),
        "discriminator.bias": torch.full((5,), 0.1),
    }


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    path = tmp_path / "colorize.safetensors"
    save_weights(path, sample_tensors(), metadata=METADATA)
    return path


# --- saving and loading ---------------------------------------------------------------------


def test_round_trip_keeps_tensors_and_metadata(weights_file: Path) -> None:
    tensors, metadata = load_weights(weights_file)

    assert tensors.keys() == sample_tensors().keys()
    for name, original in sample_tensors().items():
        assert torch.equal(tensors[name], original)
    assert {key: metadata[key] for key in METADATA} == METADATA
    assert metadata["imgzoo.format"] == 1
    assert read_metadata(weights_file) == metadata


def test_fp16_file_loads_as_fp32_within_fp16_tolerance(tmp_path: Path) -> None:
    path, full = tmp_path / "half.safetensors", tmp_path / "full.safetensors"
    save_weights(path, sample_tensors(), metadata={}, dtype=torch.float16)
    save_weights(full, sample_tensors(), metadata={})

    tensors, _ = load_weights(path)

    assert path.stat().st_size < full.stat().st_size  # really stored as fp16
    assert tensors["generator.weight"].dtype == torch.float32
    assert tensors["generator.steps"].dtype == torch.int64  # integers are never cast
    torch.testing.assert_close(
        tensors["generator.weight"], sample_tensors()["generator.weight"], atol=1e-3, rtol=1e-3
    )


def test_save_returns_the_files_sha256(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    returned = save_weights(path, sample_tensors(), metadata={})

    assert returned == sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unchanged_old_file_is_hashed_once(weights_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    an_hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(weights_file, ns=(an_hour_ago, an_hour_ago))
    calls = []
    real_sha256 = hashlib.sha256

    def counting_sha256() -> hashlib._Hash:
        calls.append(1)
        return real_sha256()

    monkeypatch.setattr(weights.hashlib, "sha256", counting_sha256)

    first, second = sha256_file(weights_file), sha256_file(weights_file)

    assert first == second and len(calls) == 1


def test_fresh_file_edited_within_one_mtime_tick_is_rehashed(weights_file: Path) -> None:
    # A coarse filesystem clock can leave mtime unchanged by a quick second write; simulate it.
    before = sha256_file(weights_file)
    stat = weights_file.stat()
    with open(weights_file, "r+b") as file:
        file.seek(-1, os.SEEK_END)
        file.write(b"\x01")
    os.utime(weights_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert sha256_file(weights_file) != before


def test_shared_and_sliced_tensors_are_saved_independently(tmp_path: Path) -> None:
    base = torch.arange(6.0)
    path = tmp_path / "tied.safetensors"
    save_weights(path, {"m.a": base, "m.tied": base, "m.slice": base[2:4]}, metadata={})

    tensors, _ = load_weights(path)

    assert torch.equal(tensors["m.tied"], base) and torch.equal(tensors["m.slice"], base[2:4])


def test_save_is_atomic_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(path, sample_tensors(), metadata={"version": 1})
    save_weights(path, sample_tensors(), metadata={"version": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]

    def crash_midway(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash_midway)
    with pytest.raises(WeightsError, match="disk full"):
        save_weights(path, sample_tensors(), metadata={"version": 3})

    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
    assert read_metadata(path)["version"] == 2


# --- verification and corrupt files ---------------------------------------------------------


def test_hash_mismatch_names_file_and_both_hashes(weights_file: Path) -> None:
    expected = sha256_file(weights_file)
    data = bytearray(weights_file.read_bytes())
    data[-1] ^= 0xFF
    weights_file.write_bytes(bytes(data))

    with pytest.raises(WeightsError) as caught:
        load_weights(weights_file, sha256=expected)

    message = str(caught.value)
    assert str(weights_file) in message and expected in message
    assert hashlib.sha256(data).hexdigest() in message
    assert "registry" in message and "delete" in message


def test_malformed_sha256_is_reported(weights_file: Path) -> None:
    with pytest.raises(WeightsError, match="not a sha256 digest"):
        load_weights(weights_file, sha256="abc123")


def truncate(data: bytes) -> bytes:
    return data[:-10]


def break_dtype(data: bytes) -> bytes:
    return data.replace(b'"F32"', b'"Q32"', 1)


@pytest.mark.parametrize(
    "corrupt",
    [truncate, break_dtype, lambda data: b"", lambda data: b"hello, I am a text file\n" * 3],
    ids=["truncated", "unknown-dtype", "empty", "text"],
)
def test_corrupt_file_raises_weights_error_naming_it(weights_file: Path, corrupt) -> None:
    weights_file.write_bytes(corrupt(weights_file.read_bytes()))

    with pytest.raises(WeightsError) as caught:
        load_weights(weights_file)

    assert str(weights_file) in str(caught.value)
    assert caught.value.path == weights_file


def test_every_flipped_bit_is_refused_without_a_registry_entry(weights_file: Path) -> None:
    original = weights_file.read_bytes()
    accepted = []
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 1
        weights_file.write_bytes(damaged)
        try:
            load_weights(weights_file)
        except WeightsError as error:
            assert error.path == weights_file and str(weights_file) in str(error)
        else:
            accepted.append(position)
    assert accepted == []  # header, metadata and tensor bytes alike


def test_damaged_tensor_data_is_named_as_such(weights_file: Path) -> None:
    data = bytearray(weights_file.read_bytes())
    data[-1] ^= 1  # the exponent of the last float: still a valid file, another value

    weights_file.write_bytes(data)

    with pytest.raises(WeightsError, match=f"{re.escape(str(weights_file))} is damaged.*delete it"):
        load_weights(weights_file)


def test_files_without_a_digest_still_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "third-party.safetensors"
    save_file(sample_tensors(), str(path), metadata={"task": '"colorize"', "format": "pt"})

    tensors, metadata = load_weights(path)

    assert all(torch.equal(tensors[name], tensor) for name, tensor in sample_tensors().items())
    assert metadata["task"] == "colorize" and weights.DIGEST_KEY not in metadata


def test_digest_covers_the_stored_dtype(tmp_path: Path) -> None:
    path = tmp_path / "half.safetensors"
    save_weights(path, sample_tensors(), metadata={}, dtype=torch.float16)

    stored, metadata = weights.read_tensors(path)

    assert stored["generator.weight"].dtype == torch.float16
    assert metadata[weights.DIGEST_KEY] == weights.content_digest(stored, _stored_metadata(path))


def _stored_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        return dict(file.metadata())


def test_truncation_is_seen_from_the_header_alone(weights_file: Path) -> None:
    weights_file.write_bytes(truncate(weights_file.read_bytes()))

    with pytest.raises(WeightsError, match="truncated"):
        read_metadata(weights_file)


def with_header(header: object) -> bytes:
    """A safetensors file with this header (raw JSON text when a str) and no tensors."""
    text = header if isinstance(header, str) else json.dumps(header)
    encoded = text.encode()
    return len(encoded).to_bytes(8, "little") + encoded


@pytest.mark.parametrize(
    "header",
    [
        {"__metadata__": {"task": 5}},
        {"__metadata__": {"config": {"image_size": 128}}},
        {"__metadata__": ["task", "colorize"]},
        {"__metadata__": "colorize"},
        "[" * 100_000 + "]" * 100_000,
        {"__metadata__": {"config": "[" * 100_000 + "]" * 100_000}},
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e400]}},
    ],
    ids=[
        "number-value",
        "object-value",
        "metadata-list",
        "metadata-string",
        "deep-header",
        "deep-metadata-value",
        "infinite-offset",
    ],
)
def test_malformed_header_is_a_weights_error_naming_the_file(tmp_path: Path, header: object) -> None:
    path = tmp_path / "odd.safetensors"
    path.write_bytes(with_header(header))

    with pytest.raises(WeightsError) as caught:
        read_metadata(path)

    assert str(path) in str(caught.value) and caught.value.path == path


def test_header_without_metadata_reads_as_empty(tmp_path: Path) -> None:
    for header in ({}, {"__metadata__": None}):
        (tmp_path / "plain.safetensors").write_bytes(with_header(header))
        assert read_metadata(tmp_path / "plain.safetensors") == {}


# --- module state ---------------------------------------------------------------------------


def test_state_round_trip_through_a_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    path = tmp_path / "model.safetensors"
    other = {"discriminator.x": torch.ones(1)}  # another model's tensors are left alone
    save_weights(path, {**state_tensors(source, prefix="model"), **other}, metadata={})

    tensors, _ = load_weights(path)
    load_state(target, tensors, prefix="model", path=path)

    assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)


@pytest.mark.parametrize(
    ("change", "tensor", "words"),
    [
        (lambda t: t.pop("model.bias"), "model.bias", "missing"),
        (lambda t: t.update({"model.extra": torch.ones(1)}), "model.extra", "not part of the model"),
        (
            lambda t: t.update({"model.weight": torch.ones(5, 3)}),
            "model.weight",
            "(5, 3), the model expects (2, 3)",
        ),
    ],
    ids=["missing", "unexpected", "misshaped"],
)
def test_load_state_names_the_tensor_at_fault(change, tensor: str, words: str) -> None:
    module = torch.nn.Linear(3, 2)
    tensors = state_tensors(module, prefix="model")
    change(tensors)

    with pytest.raises(WeightsError) as caught:
        load_state(module, tensors, prefix="model", path="colorize.safetensors")

    assert caught.value.tensor == tensor
    assert str(caught.value).startswith(f"colorize.safetensors: tensor '{tensor}'")
    assert words in str(caught.value)


# --- resolving sources ----------------------------------------------------------------------


@dataclass
class FileServer:
    root: Path
    url: str
    requested: list[str] = field(default_factory=list)


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requested.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(CountingHandler, directory=str(root))
    )
    served = FileServer(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.requested = served.requested  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def served_weights(file_server: FileServer) -> tuple[str, str]:
    """(url, sha256) of a weights file on the test server."""
    sha256 = save_weights(file_server.root / "colorize.safetensors", sample_tensors(), metadata=METADATA)
    return f"{file_server.url}/colorize.safetensors", sha256


def cached_files() -> list[str]:
    return sorted(p.name for p in cache_dir().iterdir())


def test_url_is_downloaded_once_into_the_cache(
    file_server: FileServer, served_weights: tuple[str, str]
) -> None:
    url, sha256 = served_weights

    first = resolve_weights_file(url, sha256=sha256)
    second = resolve_weights_file(url, sha256=sha256)

    assert first == second and first.parent == cache_dir()
    assert sha256[:16] in first.name
    assert first.read_bytes() == (file_server.root / "colorize.safetensors").read_bytes()
    assert file_server.requested == ["/colorize.safetensors"]
    assert cached_files() == [first.name]


def test_url_without_sha256_is_cached_under_the_urls_hash(served_weights: tuple[str, str]) -> None:
    url, _ = served_weights

    path = resolve_weights_file(url, sha256=None)

    assert path.name.startswith(hashlib.sha256(url.encode()).hexdigest()[:16])
    assert read_metadata(path)["task"] == "colorize"


def test_download_with_wrong_sha256_keeps_nothing(served_weights: tuple[str, str]) -> None:
    url, _ = served_weights

    with pytest.raises(WeightsError, match="sha256") as caught:
        resolve_weights_file(url, sha256="0" * 64)

    assert url in str(caught.value)
    assert cached_files() == []


def test_download_of_a_non_weights_page_keeps_nothing(file_server: FileServer) -> None:
    (file_server.root / "login.html").write_text("<html>please sign in</html>")

    with pytest.raises(WeightsError, match="did not serve a safetensors file"):
        resolve_weights_file(f"{file_server.url}/login.html", sha256=None)

    assert cached_files() == []


def test_missing_url_names_it_and_the_manual_download_path(file_server: FileServer) -> None:
    url = f"{file_server.url}/nowhere.safetensors"

    with pytest.raises(WeightsError) as caught:
        resolve_weights_file(url, sha256=None)

    message = str(caught.value)
    assert url in message and "404" in message and str(cache_dir()) in message
    assert cached_files() == []


def test_refused_connection_is_a_weights_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w.safetensors"

    with pytest.raises(WeightsError, match=re.escape(url)):
        resolve_weights_file(url, sha256=None)


def test_offline_mode_fails_fast_without_touching_the_network(
    file_server: FileServer, served_weights: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, sha256 = served_weights
    monkeypatch.setenv("IMGZOO_OFFLINE", "true")

    with pytest.raises(WeightsError) as caught:
        resolve_weights_file(url, sha256=sha256)

    message = str(caught.value)
    assert "offline" in message and "IMGZOO_OFFLINE" in message and str(cache_dir()) in message
    assert file_server.requested == []


def test_offline_mode_uses_the_cached_file(
    file_server: FileServer, served_weights: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, sha256 = served_weights
    downloaded = resolve_weights_file(url, sha256=sha256)
    monkeypatch.setenv("IMGZOO_OFFLINE", "1")

    assert resolve_weights_file(url, sha256=sha256) == downloaded
    assert len(file_server.requested) == 1


@dataclass
class Script:
    """What the scripted server answers: ``body`` sent ``repeat`` times, ``pause_s`` apart."""

    body: bytes = b""
    repeat: int = 1
    pause_s: float = 0.0
    content_length: str | None = None
    sent: int = 0


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def do_GET(self) -> None:
        script: Script = self.server.script  # type: ignore[attr-defined]
        self.send_response(200)
        if script.content_length is not None:
            self.send_header("Content-Length", script.content_length)
        self.end_headers()
        try:
            for _ in range(script.repeat):
                self.wfile.write(script.body)
                script.sent += len(script.body)
                time.sleep(script.pause_s)
        except OSError:
            pass  # the client hung up, as it should when it has had enough

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted_server() -> Iterator[tuple[str, Script]]:
    """(url, script): a server on 127.0.0.1 answering every request as ``script`` says."""
    script = Script()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    server.daemon_threads = True
    server.script = script  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/w.safetensors", script
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_dripping_server_meets_the_overall_deadline(
    scripted_server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, script = scripted_server
    script.body, script.repeat, script.pause_s = b"x", 200, 0.02  # each byte well within the timeout
    monkeypatch.setenv("IMGZOO_DOWNLOAD_DEADLINE", "0.3")

    with pytest.raises(WeightsError, match=r"took over 0\.3 s .*IMGZOO_DOWNLOAD_DEADLINE"):
        resolve_weights_file(url, sha256=None)

    assert cached_files() == []  # its .part included
    assert script.sent < 200


def test_a_download_growing_past_the_registry_size_is_stopped(scripted_server: tuple[str, Script]) -> None:
    url, script = scripted_server
    script.body, script.repeat = b"x" * 65536, 1024  # 64 MiB, with no Content-Length

    with pytest.raises(WeightsError, match="sent more than 1000 bytes, the registry's size"):
        resolve_weights_file(url, sha256="0" * 64, size=1000)

    assert cached_files() == []
    assert script.sent < 32 << 20  # it hung up long before the end, whatever the socket buffers held


@pytest.mark.parametrize(
    ("announced", "message"),
    [
        ("10000000000", "announces 10000000000 bytes, more than the limit of 4294967296 bytes"),
        ("lots", "malformed Content-Length 'lots'"),
    ],
)
def test_an_announced_length_over_the_cap_is_refused_before_reading(
    scripted_server: tuple[str, Script], announced: str, message: str
) -> None:
    url, script = scripted_server
    script.body, script.content_length = b"x" * 100, announced

    with pytest.raises(WeightsError, match=message):
        resolve_weights_file(url, sha256=None)

    assert cached_files() == []


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_download_timeout_must_be_a_positive_number_of_seconds(
    served_weights: tuple[str, str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    url, sha256 = served_weights
    monkeypatch.setenv("IMGZOO_DOWNLOAD_TIMEOUT", value)

    with pytest.raises(
        ConfigError, match=f"IMGZOO_DOWNLOAD_TIMEOUT: must be a positive number of seconds, got '{value}'"
    ):
        resolve_weights_file(url, sha256=sha256)


@pytest.mark.parametrize("with_sha256", [True, False])
def test_a_damaged_cached_download_is_downloaded_again(
    file_server: FileServer, served_weights: tuple[str, str], with_sha256: bool
) -> None:
    url, sha256 = served_weights
    cached = resolve_weights_file(url, sha256=sha256 if with_sha256 else None)
    cached.write_bytes(cached.read_bytes()[:-10])  # a damaged disk, an interrupted copy

    again = resolve_weights_file(url, sha256=sha256 if with_sha256 else None)

    assert again == cached and again.read_bytes() == (file_server.root / "colorize.safetensors").read_bytes()
    assert len(file_server.requested) == 2


def test_partial_downloads_of_killed_processes_are_removed(
    scripted_server: tuple[str, Script], served_weights: tuple[str, str]
) -> None:
    drip_url, script = scripted_server
    script.body, script.repeat, script.pause_s = b"x", 6000, 0.01
    download = (
        f"from imgzoo.weights import resolve_weights_file; resolve_weights_file({drip_url!r}, sha256=None)"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "core")}
    killed = subprocess.Popen([sys.executable, "-c", download], env=environment)
    try:
        for _ in range(600):  # until its partial download appears (a minute at most)
            if any(name.endswith(".part") for name in cached_files()) or killed.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        killed.kill()
        killed.wait(timeout=60)
    orphaned = [name for name in cached_files() if name.endswith(".part")]
    assert len(orphaned) == 1
    alive = temporary_sibling(cache_dir() / "other.safetensors", kind="part")
    alive.write_bytes(b"a download in progress")

    url, sha256 = served_weights
    downloaded = resolve_weights_file(url, sha256=sha256)

    assert sorted(cached_files()) == sorted([downloaded.name, alive.name])


def test_package_resource_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "tiny_zoo_weights"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    save_weights(package / "data" / "w.safetensors", sample_tensors(), metadata={})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "tiny_zoo_weights", raising=False)

    resolved = resolve_weights_file("tiny_zoo_weights:data/w.safetensors", sha256=None)

    assert resolved.samefile(package / "data" / "w.safetensors")
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights_file("tiny_zoo_weights:data/other.safetensors", sha256=None)
    with pytest.raises(WeightsError, match="not installed"):
        resolve_weights_file("no_such_zoo_package:w.safetensors", sha256=None)


def test_local_paths_are_relative_to_base_dir(weights_file: Path) -> None:
    assert resolve_weights_file(weights_file.name, sha256=None, base_dir=weights_file.parent) == weights_file
    assert resolve_weights_file(str(weights_file), sha256=None) == weights_file

    with pytest.raises(WeightsError) as caught:
        resolve_weights_file("missing.safetensors", sha256=None, base_dir=weights_file.parent)
    assert str(weights_file.parent / "missing.safetensors") in str(caught.value)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == tmp_path / "cache" and cache_dir().is_dir()
    monkeypatch.delenv("IMGZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "imgzoo"


# --- project rules --------------------------------------------------------------------------


def test_importing_weights_does_not_import_torch() -> None:
    check = "import sys, imgzoo.weights; sys.exit('torch' in sys.modules)"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "core")}
    assert subprocess.run([sys.executable, "-c", check], env=environment, timeout=60).returncode == 0


def test_no_pickle_anywhere_in_the_code() -> None:
    # Spelled in pieces so that this file does not match its own search.
    module = "pick" + "le"
    pickle_use = re.compile(rf"torch\.load\(|import {module}\b|from {module} import|{module}\.loads?\(")
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for folder in ("core", "plugins", "examples")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if pickle_use.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# ── what the weights hold ─────────────────────────────────────────────────────────────────


def _write_invert_weights_holding(path: Path, value: float) -> str:
    """invert's weights with one value of its kernel replaced by ``value``; their sha256."""
    from toy_tasks import InvertConfig, InvertTask

    task = InvertTask(InvertConfig())
    tensors = state_tensors(task.build_models()["model"], prefix="model")
    tensors["model.mix.weight"].view(-1)[4] = value
    metadata = {"task": "invert", "config": task.config.model_dump(mode="json")}
    return save_weights(path, tensors, metadata=metadata)


def _load_by_path(path: Path, sha256: str, tmp_path: Path) -> None:
    import imgzoo

    imgzoo.load("invert", path)


def _load_by_registry(path: Path, sha256: str, tmp_path: Path) -> None:
    import imgzoo
    from toy_tasks import write_registry

    write_registry(tmp_path / "r.toml", "invert", {"bad": (path.name, sha256)})
    imgzoo.add_registry(tmp_path / "r.toml")
    imgzoo.load("invert", "bad")


def _train_from(path: Path, sha256: str, tmp_path: Path) -> None:
    from imgzoo.training import train

    train("invert", "minifigs:n=4,resolution=16", out=tmp_path / "run", weights=path, steps=1)


def _export(path: Path, sha256: str, tmp_path: Path) -> None:
    from imgzoo.exporting import export

    export("invert", path, format="torchscript", output=tmp_path / "invert.pt")


@pytest.mark.usefixtures("toy_tasks")
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("route", [_load_by_path, _load_by_registry, _train_from, _export])
def test_weights_with_non_finite_values_are_refused_whatever_the_route(
    tmp_path: Path, value: float, route: Any
) -> None:
    # Before, they loaded and gave a plausible-looking picture with no error.
    path = tmp_path / "invert.safetensors"
    sha256 = _write_invert_weights_holding(path, value)
    refusal = r"invert\.safetensors: tensor 'model\.mix\.weight' holds NaN or infinite values"
    with pytest.raises(WeightsError, match=refusal):
        route(path, sha256, tmp_path)
    assert not (tmp_path / "invert.pt").exists()


@pytest.mark.parametrize("config", [[1, 2], "image_size=8", 3])
def test_weights_whose_config_is_not_a_table_are_refused(tmp_path: Path, config: object) -> None:
    # Before, a traceback from wherever the config was first used as a table.
    path = tmp_path / "w.safetensors"
    save_weights(path, {"model.w": torch.zeros(2)}, metadata={"task": "invert", "config": config})
    refusal = f"its metadata 'config' must be a table of settings, not {type(config).__name__}"
    with pytest.raises(WeightsError, match=refusal):
        read_metadata(path)
