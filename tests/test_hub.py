"""``hf://OWNER/REPO[@REVISION]/PATH`` weights, read from a Hugging Face cache built in the test's
folder with the network forbidden (HF_HUB_OFFLINE=1): the same files, loaded by address, equal
them loaded by path, wherever weights are accepted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from fake_hub import COMMIT_1, COMMIT_2, put_in_hub_cache
from imgzoo import cli
from imgzoo.errors import MissingExtraError, WeightsError
from imgzoo.hub import HubAddress
from imgzoo.weights import local_weights_file, resolve_weights_file
from toy_tasks import write_invert_weights

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("toy_tasks")


@pytest.fixture
def hub_weights(hub_cache: Path, tmp_path: Path) -> tuple[str, Path]:
    """Invert weights at hf://me/invert-demo/invert.safetensors, and the same file on disk."""
    local = tmp_path / "invert.safetensors"
    write_invert_weights(local)
    put_in_hub_cache(hub_cache, "me/invert-demo", "invert.safetensors", local)
    return "hf://me/invert-demo/invert.safetensors", local


def picture() -> np.ndarray:
    return np.random.default_rng(3).random((12, 10, 3)).astype(np.float32)


def test_hub_weights_load_from_the_offline_cache_and_equal_the_file_by_path(
    hub_weights: tuple[str, Path],
) -> None:
    address, local = hub_weights
    by_address, by_path = imgzoo.load("invert", address), imgzoo.load("invert", local)

    assert by_address.weights is not None and by_address.weights.name == address
    for name, tensor in by_path.models["model"].state_dict().items():
        assert torch.equal(by_address.models["model"].state_dict()[name], tensor)
    np.testing.assert_array_equal(
        imgzoo.run("invert", picture(), weights=address), imgzoo.run("invert", picture(), weights=local)
    )


def test_a_missing_file_is_one_line_naming_the_address_and_the_offline_lookup(
    hub_weights: tuple[str, Path],
) -> None:
    for address in ("hf://me/invert-demo/other.safetensors", "hf://me/nothing-here/invert.safetensors"):
        with pytest.raises(WeightsError) as caught:
            imgzoo.load("invert", address)
        message = str(caught.value)
        assert address in message and "offline (HF_HUB_OFFLINE=1)" in message and "\n" not in message


def test_a_revision_picks_the_file_of_that_commit_or_tag(hub_cache: Path, tmp_path: Path) -> None:
    old, new = tmp_path / "old.safetensors", tmp_path / "new.safetensors"
    write_invert_weights(old, gain=0.5)
    write_invert_weights(new)
    put_in_hub_cache(hub_cache, "me/invert-demo", "w/invert.safetensors", old, commit=COMMIT_1, refs=("v1",))
    put_in_hub_cache(
        hub_cache, "me/invert-demo", "w/invert.safetensors", new, commit=COMMIT_2, refs=("main",)
    )

    def resolved(source: str) -> bytes:
        return resolve_weights_file(source, sha256=None).read_bytes()

    assert resolved("hf://me/invert-demo/w/invert.safetensors") == new.read_bytes()
    assert resolved("hf://me/invert-demo@v1/w/invert.safetensors") == old.read_bytes()
    assert resolved(f"hf://me/invert-demo@{COMMIT_1}/w/invert.safetensors") == old.read_bytes()
    assert imgzoo.load("invert", "hf://me/invert-demo@v1/w/invert.safetensors").task.config.gain == 0.5
    with pytest.raises(WeightsError, match=r"hf://me/invert-demo@v2/.*revision v2.*offline"):
        resolved("hf://me/invert-demo@v2/w/invert.safetensors")


def test_addresses_read_as_huggingface_hub_writes_them() -> None:
    address = HubAddress.parse("hf://me/invert-demo@refs%2Fpr%2F1/sub/w.safetensors")
    assert (address.repo_id, address.revision, address.path) == (
        "me/invert-demo",
        "refs/pr/1",
        "sub/w.safetensors",
    )
    assert str(address) == "hf://me/invert-demo@refs%2Fpr%2F1/sub/w.safetensors"
    assert address.page == "https://huggingface.co/me/invert-demo"
    for malformed in ("hf://me/w.safetensors", "hf://me/repo", "hf://me/repo/"):
        with pytest.raises(WeightsError, match=r"hf://OWNER/REPO\[@REVISION\]/PATH"):
            imgzoo.load("invert", malformed)


def test_a_registry_entry_on_the_hub_is_verified_by_sha256_when_given(
    hub_weights: tuple[str, Path], tmp_path: Path
) -> None:
    address, local = hub_weights
    sha256 = hashlib.sha256(local.read_bytes()).hexdigest()
    registry = tmp_path / "hub.toml"
    registry.write_text(
        f'[tasks.invert.weights.pinned]\nfile = "{address}"\nsha256 = "{sha256}"\n\n'
        f'[tasks.invert.weights.unpinned]\nfile = "{address}"\n\n'
        f'[tasks.invert.weights.wrong]\nfile = "{address}"\nsha256 = "{"0" * 64}"\n'
    )
    imgzoo.add_registry(registry)

    for name in ("pinned", "unpinned"):
        loaded = imgzoo.load("invert", name)
        assert loaded.weights is not None and loaded.weights.path == local_weights_file(address, sha256=None)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        imgzoo.load("invert", "wrong")


def test_a_damaged_hub_file_is_refused_by_its_own_digest(hub_cache: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "invert.safetensors"
    write_invert_weights(damaged)
    content = bytearray(damaged.read_bytes())
    content[-1] ^= 0x01  # one bit of the last tensor's data
    damaged.write_bytes(bytes(content))
    put_in_hub_cache(hub_cache, "me/invert-demo", "invert.safetensors", damaged)

    with pytest.raises(WeightsError, match="damaged"):
        imgzoo.load("invert", "hf://me/invert-demo/invert.safetensors")


def test_only_hub_entries_may_leave_out_their_sha256(tmp_path: Path) -> None:
    registry = tmp_path / "r.toml"
    registry.write_text('[tasks.invert.weights.local]\nfile = "w.safetensors"\n')
    imgzoo.add_registry(registry)
    with pytest.raises(imgzoo.ConfigError, match="sha256"):
        imgzoo.task_info("invert")


def test_info_links_each_entry_to_its_model_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "r.toml"
    registry.write_text(
        '[tasks.invert.weights.hub]\nfile = "hf://me/invert-demo@v1/invert.safetensors"\n\n'
        f'[tasks.invert.weights.web]\nurl = "https://example.invalid/w.safetensors"\nsha256 = "{"ab" * 32}"\n'
        'card = "https://example.invalid/card.html"\n'
    )
    imgzoo.add_registry(registry)

    assert cli.main(["info", "invert"]) == 0
    shown = capsys.readouterr().out
    assert "card https://huggingface.co/me/invert-demo\n" in shown
    assert "card https://example.invalid/card.html\n" in shown
    weights = imgzoo.task_info("invert").as_dict()["weights"]
    assert weights["hub"]["card"] == "https://huggingface.co/me/invert-demo"


@pytest.mark.slow
def test_training_and_imgzoo_run_take_hub_weights(
    hub_weights: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from imgzoo.images import load_image, save_image
    from imgzoo.training import train

    address, local = hub_weights
    images = tmp_path / "images"
    for index in range(4):
        save_image(
            images / f"{index}.png", np.random.default_rng(index).random((20, 20, 3)).astype(np.float32)
        )
    result = train(
        "invert",
        str(images),
        out=tmp_path / "run",
        weights=address,
        steps=1,
        batch_size=2,
        device="cpu",
        num_workers=0,
        progress=False,
        val_fraction=0.0,
    )
    assert imgzoo.weights.read_metadata(result.weights)["recipe"]["started_from"] == {
        "weights": address,
        "sha256": hashlib.sha256(local.read_bytes()).hexdigest(),
    }

    assert (
        cli.main(
            ["run", "invert", str(images / "0.png"), "-o", str(tmp_path / "out.png"), "--weights", address]
        )
        == 0
    )
    by_path = imgzoo.run("invert", str(images / "0.png"), weights=local)
    np.testing.assert_array_equal(load_image(tmp_path / "out.png").stored, by_path)


def test_without_huggingface_hub_a_hub_address_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(
        MissingExtraError, match=r"huggingface_hub is not installed .*pip install 'imgzoo\[hub\]'"
    ):
        imgzoo.load("invert", "hf://me/invert-demo/invert.safetensors")
    assert local_weights_file("hf://me/invert-demo/invert.safetensors", sha256=None) is None


@pytest.mark.slow
def test_the_environment_alone_makes_a_fresh_process_read_the_offline_cache(
    hub_cache: Path, tmp_path: Path
) -> None:
    """What a user does: HF_HUB_CACHE and HF_HUB_OFFLINE set before anything is imported; a shipped task."""
    shipped = REPO_ROOT / "plugins" / "imgzoo_colorize" / "weights" / "colorize-minifigs-preview.safetensors"
    put_in_hub_cache(hub_cache, "me/colorize", "colorize.safetensors", shipped)
    script = (
        "import numpy as np, imgzoo\n"
        "gray = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)\n"
        "a = imgzoo.run('colorize', gray, weights='hf://me/colorize/colorize.safetensors')\n"
        f"b = imgzoo.run('colorize', gray, weights={str(shipped)!r})\n"
        "print(np.array_equal(a, b))\n"
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "core"), str(REPO_ROOT / "plugins")]),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.stdout.strip() == "True", completed.stderr


def test_the_server_serves_hub_weights(hub_weights: tuple[str, Path]) -> None:
    from imgzoo.serve import ServeSettings, create_app
    from serving import decode_png, encode_png, local_client

    address, local = hub_weights
    picture = encode_png(np.random.default_rng(5).integers(0, 256, (9, 7, 3), dtype=np.uint8))
    with local_client(create_app(["invert"], ServeSettings(weights={"invert": address}))) as client:
        answer = client.post("/v1/tasks/invert", content=picture, headers={"content-type": "image/png"})
    assert answer.status_code == 200
    np.testing.assert_array_equal(decode_png(answer.content), imgzoo.run("invert", picture, weights=local))


def test_an_export_records_the_hub_weights_it_was_made_from(
    hub_weights: tuple[str, Path], tmp_path: Path
) -> None:
    from imgzoo.exporting import export, exported_metadata

    address, local = hub_weights
    report = export("invert", address, format="torchscript", output=tmp_path / "invert.pt")
    stored = exported_metadata(report.file)
    assert stored["imgzoo.weights"] == address
    assert stored["imgzoo.weights_sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
