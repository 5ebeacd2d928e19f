"""The ``tensorboard`` logger: event files under ``OUT/tensorboard/``, written with
``torch.utils.tensorboard`` (``pip install "imgzoo[tensorboard]"``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

import cv2

from imgzoo.errors import MissingExtraError
from imgzoo.training.loggers import Logger, LoggerRun

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Logger):
    """Scalars and picture grids as TensorBoard events in ``OUT/tensorboard/``.

    A resumed run appends to the same folder with ``purge_step`` at the step after its
    checkpoint: TensorBoard hides whatever the interrupted run logged past it, so each step
    shows once."""

    name = "tensorboard"

    @classmethod
    def check(cls) -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise MissingExtraError("tensorboard", extra="tensorboard", purpose="for the tensorboard logger")

    def __init__(self, run: LoggerRun) -> None:
        super().__init__(run)
        from torch.utils.tensorboard import SummaryWriter

        purge = None if run.resumed_step is None else run.resumed_step + 1
        self.writer = SummaryWriter(log_dir=str(run.out_dir / "tensorboard"), purge_step=purge)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)

    def log_image(self, step: int, tag: str, path: Path) -> None:
        picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if picture is not None:
            self.writer.add_image(tag, picture[..., ::-1].copy(), global_step=step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()
