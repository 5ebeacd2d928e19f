"""The Model interface: a ``torch.nn.Module`` that knows its config and saves itself as safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ValidationError

from imgzoo import weights as _weights
from imgzoo.errors import WeightsError

__all__ = ["Model"]

M = TypeVar("M", bound="Model")


class Model(torch.nn.Module):
    """Base class of imgzoo models.

    A subclass declares ``Config`` (a pydantic model) and builds its layers from it in
    ``__init__(self, config)``. Saved files hold the tensors under the ``model.`` prefix and
    the config in the metadata, so :meth:`load` needs nothing else.
    """

    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel) -> None:
        super().__init__()
        self.config = config

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def save(self, path: str | Path, *, fp16: bool = False, **metadata: Any) -> str:
        """Write the weights and config to a safetensors file; returns its sha256."""
        tensors = _weights.state_tensors(self, prefix="model")
        meta = {"model_class": f"{type(self).__module__}:{type(self).__qualname__}", **metadata}
        meta["model_config"] = self.config.model_dump(mode="json")
        return _weights.save_weights(path, tensors, metadata=meta, dtype=torch.float16 if fp16 else None)

    @classmethod
    def load(cls: type[M], path: str | Path, *, sha256: str | None = None) -> M:
        """Build the model from a file written by :meth:`save` (config from its metadata)."""
        tensors, metadata = _weights.load_weights(path, sha256=sha256)
        if "model_config" not in metadata:
            raise WeightsError(
                f"{path}: no 'model_config' in the metadata; was it written by Model.save()?", path=path
            )
        try:
            config = cls.Config.model_validate(metadata["model_config"])
        except ValidationError as error:
            raise WeightsError(
                f"{path}: its model_config does not fit {cls.__qualname__}: {error.errors()[0]['msg']} "
                f"(at {'.'.join(map(str, error.errors()[0]['loc'])) or 'the top level'})",
                path=path,
            ) from None
        model = cls(config)
        _weights.load_state(model, tensors, prefix="model", path=path)
        return model
