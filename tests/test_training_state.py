"""What a run records: which training settings are its recipe, and the typed run state that
its checkpoints keep (:mod:`imgzoo.training.config`, :mod:`imgzoo.training.state`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imgzoo import ZooError
from imgzoo.images import save_image
from imgzoo.training import Callback, TrainConfig, Trainer, train
from imgzoo.training.config import OUTPUT_SETTINGS, PLACE_SETTINGS, RECIPE_SETTINGS, SETTING_KINDS
from imgzoo.training.state import RunState
from imgzoo.weights import load_weights

pytestmark = pytest.mark.usefixtures("toy_tasks")

QUICK: dict[str, Any] = {"batch_size": 4, "device": "cpu", "num_workers": 0, "log_every": 1}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(10):
        save_image(folder / f"{index:02d}.png", rng.random((20, 20, 3)).astype(np.float32))
    return str(folder)


class ConfigSeen(Callback):
    """Records the TrainConfig a run trains with."""

    def __init__(self) -> None:
        self.config: TrainConfig | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        self.config = trainer.config


def test_every_train_setting_is_of_exactly_one_kind() -> None:
    assert SETTING_KINDS.keys() == TrainConfig.model_fields.keys()
    kinds = (RECIPE_SETTINGS, PLACE_SETTINGS, OUTPUT_SETTINGS)
    assert sum(len(kind) for kind in kinds) == len(TrainConfig.model_fields)
    assert set().union(*kinds) == set(TrainConfig.model_fields)
    assert {"device", "num_workers", "progress"} == PLACE_SETTINGS


def test_the_recipe_records_the_recipe_settings_and_a_resume_runs_in_the_place_it_is_given(
    images: str, tmp_path: Path
) -> None:
    train("toygan", images, out=tmp_path, steps=2, progress=False, export="inference", **QUICK)
    recipe = load_weights(tmp_path / "toygan.safetensors")[1]["recipe"]
    assert set(recipe) & set(TrainConfig.model_fields) == RECIPE_SETTINGS

    seen = ConfigSeen()
    # Given neither progress nor export now: the place is this call's (the default), the
    # output setting the run's.
    train("toygan", images, out=tmp_path, resume=True, steps=3, callbacks=[seen], **QUICK)
    assert seen.config is not None and seen.config.progress is True
    assert seen.config.export == "inference"
    assert {key.split(".")[0] for key in load_weights(tmp_path / "toygan.safetensors")[0]} == {"generator"}


def test_run_state_round_trips(images: str, tmp_path: Path) -> None:
    train("toygan", images, out=tmp_path, steps=2, **QUICK)
    folder = tmp_path / "checkpoints" / "step-00000002"
    written = json.loads((folder / "state.json").read_text())
    state = RunState.from_dict(written, source=folder)
    assert written["version"] == RunState.VERSION and state.to_dict() == {
        key: value for key, value in written.items() if key != "format"
    }
    assert state.task == "toygan" and state.step == 2 and set(state.optimizers) == {"generator", "critic"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": RunState.VERSION + 1}, f"this imgzoo reads version {RunState.VERSION}"),
        ({"version": None}, "version None"),
        ({"step": None}, "lacks step"),
        ({"totals": None}, "lacks totals"),
    ],
)
def test_a_run_state_that_cannot_be_read_says_which_checkpoint_and_why(
    change: dict[str, Any], message: str, images: str, tmp_path: Path
) -> None:
    train("invert", images, out=tmp_path, steps=1, **QUICK)
    folder = tmp_path / "checkpoints" / "step-00000001"
    written = json.loads((folder / "state.json").read_text())
    with pytest.raises(ZooError, match=message) as error:
        RunState.from_dict({**written, **change}, source=folder)
    assert str(folder) in str(error.value)
