"""The Task interface: one image-to-image job, everything imgzoo needs to run and train it.

A task is a small class. imgzoo's core never knows a task by name; it only calls these methods:

    inference    image (+ named inputs) ──preprocess──▶ tensor ──forward──▶ tensor ──postprocess──▶ output
    training     Sample ──make_pair──▶ (input, target) ──training_step(models, batch, ctx)──▶ losses
    evaluation   input ──predict_for_metrics──▶ output; metrics(output, target) ──▶ {"psnr": ..., ...}
    whole run    truth ──degrade──▶ image (+ named inputs) ──run()──▶ result;
                 image_metrics(result, truth) ──▶ {...}

Images at the interface are numpy HxWxC float32 in [0, 1], RGB, C = 1 or 3 (``imgzoo.images``
has already read and validated whatever the user passed; C = 4, RGBA, for a task that sets
``wants_alpha``). Tensors are NCHW float32.

A task declares its contract in class attributes, and the pipeline and the test kit hold it to
them: ``extra_inputs`` (named inputs besides the image, such as an inpainting ``mask``),
``output_size`` (``scale`` times the input by default), ``output_kind`` ("image" in [0, 1], or
an unclipped float "map") and ``output_channels``.

A plugin registers a :class:`TaskDeclaration` (the name, the description, the config and where
the class lives): ``imgzoo list`` and ``imgzoo info`` read it, and the task's module, which
imports torch and its model code at the top like any model code, is imported on first use.
This module itself stays importable without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np
    import torch

    from imgzoo.data.base import Sample
    from imgzoo.domain import DomainStatistics
    from imgzoo.tiling import Tiling

__all__ = [
    "RESERVED_INPUT_NAMES",
    "InputSpec",
    "StepContext",
    "Task",
    "TaskConfig",
    "TaskDeclaration",
    "declaration_problems",
    "request_option_problem",
]

OutputKind = Literal["image", "map"]
InputKind = Literal["image", "mask", "map"]

RESERVED_INPUT_NAMES = frozenset(
    {
        "task",
        "image",
        "weights",
        "device",
        "precision",
        "backend",
        "output",
        "overwrite",
        "batch_size",
        "config",
        "config_file",
        "tile",
    }
)
"""Keyword arguments of ``imgzoo.run``/``imgzoo.load`` themselves: no input may take these names."""


@dataclass(frozen=True)
class InputSpec:
    """A named input a task takes besides its image: ``imgzoo.run(task, image, mask=m)``,
    ``imgzoo run TASK IMAGE --input mask=m.png``. It is read and validated like the image, then
    held to these rules."""

    name: str
    """The keyword it is passed by, a Python identifier (``mask``)."""
    description: str = ""
    """One line for ``imgzoo info`` and error messages."""
    channels: int | None = None
    """1 (gray, a mask) or 3 (RGB); None accepts either."""
    same_size: bool = True
    """Whether it must have the image's height and width."""
    required: bool = True
    """An optional input that is not given reaches the task as None."""
    kind: InputKind = "image"
    """How its values reach the task, whatever form it came in: "image", scaled as pictures are
    (uint8 / 255, uint16 / 65535, floats in [0, 1]); "mask", 0.0 or 1.0, where any nonzero value
    is 1 (a 0/1 or a 0/255 PNG, a bool or float array alike); "map", the values as given (the
    integers of an integer file, any finite float)."""


class TaskConfig(BaseModel):
    """Base of every task's config: strict (unknown keys are errors) and fully described.

    Subclass it and add fields, each with ``Field(default, description=...)``.
    """

    # allow_inf_nan: no setting is meaningful at infinity, and an infinite one trains NaN weights.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )

    image_size: int = Field(
        256,
        ge=8,
        le=8192,
        description="Working resolution: training crops are this size, and so is the network input.",
    )
    # Above 1, adaptive optimizers (Adam, RMSprop) only make noise, finite noise that no check catches.
    learning_rate: float = Field(
        1e-3, gt=0, le=1, description="Base learning rate of the task's optimizer(s)."
    )


class StepContext(Protocol):
    """What the trainer hands to :meth:`Task.training_step`.

    The task decides *what* to optimize and in which order (a GAN steps its discriminator, then
    its generator); the trainer owns *how*: mixed precision, gradient scaling and accumulation,
    clipping, distributed synchronisation and learning-rate schedules.
    """

    step: int
    """Optimizer steps taken so far (not counting accumulation micro-steps)."""

    def optimize(self, optimizer: str, loss: torch.Tensor) -> torch.Tensor:
        """Backpropagate ``loss`` and step the named optimizer when the accumulation window closes.

        Returns ``loss`` detached, for logging.
        """
        ...


class Task:
    """Base class of an image-to-image task. Override what differs; the defaults fit a task
    with one model (``models["model"]``), an L1 loss and outputs in [0, 1].
    """

    name: ClassVar[str] = ""
    """Public name: ``imgzoo.run(name, image)``. Lowercase, digits and dashes."""

    description: ClassVar[str] = ""
    """One line shown by ``imgzoo list``."""

    Config: ClassVar[type[TaskConfig]] = TaskConfig
    """The pydantic config class; ``self.config`` is an instance of it."""

    inference_model_name: ClassVar[str] = "model"
    """The key in :meth:`build_models`' dict of the model inference runs (``"generator"`` for a
    GAN): a name, not the model itself."""

    scale: ClassVar[int] = 1
    """How many times larger than its input the output is, per side (2 for a 2x
    super-resolution). Paired training data must agree with it (``A/`` low resolution, ``B/``
    ``scale`` times larger)."""

    extra_inputs: ClassVar[tuple[InputSpec, ...]] = ()
    """Named inputs besides the image (an inpainting ``mask``, a reference picture). Each one
    reaches :meth:`preprocess` and :meth:`postprocess` as a keyword argument of that name, an
    HxWxC float32 array with the values its :attr:`InputSpec.kind` says (None for an optional
    one not given). No config field may share a name with an input."""

    output_kind: ClassVar[OutputKind] = "image"
    """"image": a picture in [0, 1] with 1, 3 or 4 channels, clipped to that range and saved as
    PNG/JPEG like the input. "map": float values returned as they are (depth, flow, a
    probability mask), any number of channels, saved only as ``.npy``."""

    output_channels: ClassVar[int | None] = None
    """Channels of every output; None leaves it open (1 or 3 for an image, following the input)."""

    wants_alpha: ClassVar[bool] = False
    """True: the task receives RGBA (alpha 1 where the input has none) and its output is final.
    False: the alpha is set aside and put back on an image output, resized to its size."""

    takes_stored_pixels: ClassVar[bool] = False
    """True: :meth:`preprocess` and :meth:`postprocess` receive the image as it was read: the
    uint8 or uint16 integers of an integer input (0..255, 0..65535), float32 in [0, 1] otherwise,
    so that a task can work on a large 8-bit picture without a float copy of it; and an
    "image" result may then be uint8 (0..255) too. False: always float32."""

    tiling: ClassVar[Tiling | None] = None
    """How the pipeline may cut an image larger than ``tiling.tile`` into overlapping tiles and
    run them one batch at a time (see :mod:`imgzoo.tiling`). ``None``: images always run whole,
    as a task that resizes or looks at the whole picture needs."""

    request_options: ClassVar[tuple[str, ...]] = ()
    """Config fields a server request may set (``?extract_edges=true``): fields that change
    neither the models' shapes nor much the memory an image takes. Each must be bounded: a
    bool, a ``Literal``, or a number whose ``Field`` has a lower and an upper bound (``ge``/``gt``
    and ``le``/``lt``), which a request's value is held to. The server refuses any other field
    (each is fixed by its weights and config); ``imgzoo.run`` keyword options may set any."""

    bytes_per_pixel: ClassVar[float | None] = None
    """Peak memory of one forward pass per pixel the model sees (of :meth:`working_size`), in
    bytes, batch of one. None: measured once, the first time a pipeline needs it, by running a
    small input through the models. Requests, batches and ``imgzoo.run`` calls are admitted
    against estimates made from it before any image is decoded."""

    test_overrides: ClassVar[Mapping[str, Any]] = {}
    """Config values that make the task small and quick for the contract checks of
    :mod:`imgzoo.testing` (fewer filters, a small ``image_size``); nothing else uses them."""

    def __init__(self, config: TaskConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.domain_statistics: DomainStatistics | None = None
        """The statistics of the training pictures' :meth:`domain_features` stored in the weights
        file (see :mod:`imgzoo.domain`), set when the weights are loaded; None when the file has
        none (or no weights were loaded). A task that has them can tell, in :meth:`forward`, how
        unlike its training data a picture is."""

    # ── models ────────────────────────────────────────────────────────────────────────────
    def build_models(self) -> dict[str, torch.nn.Module]:
        """Build freshly initialised models, keyed by role (``{"model": ...}``, or
        ``{"generator": ..., "discriminator": ...}``): any ``torch.nn.Module``. Weights are
        loaded afterwards, and saved with the task's config (see :mod:`imgzoo.weights`)."""
        raise NotImplementedError(f"task {self.name!r} must implement build_models()")

    # ── inference ─────────────────────────────────────────────────────────────────────────
    def prepare_inference(self, models: Mapping[str, torch.nn.Module]) -> Mapping[str, torch.nn.Module]:
        """The models inference runs, given the loaded ones in eval mode on their device; called
        once when a pipeline is made. Override to return faster equivalents (batch norm folded
        into the convolutions, say) as new modules: the given ones must stay as they are, for
        training and for saving weights. The default returns them unchanged;
        ``imgzoo.prepack_convolutions(copy.deepcopy(model))`` is a cheap start on the CPU."""
        return models

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of the output for an input of this size: ``scale`` times it.
        Override for any other geometry (a fixed-size output, padding to a multiple)."""
        return height * self.scale, width * self.scale

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the model sees for an input of this size (what :meth:`preprocess`
        makes of it), for memory estimates made before an image is decoded: the input's own by
        default. A task that resizes to a working resolution, or pads, overrides it."""
        return height, width

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """Turn one HxWxC float image into a 1xCxhxw model input (resize, pad or stack channels
        as needed). A task with :attr:`extra_inputs` adds a keyword parameter for each, with a
        default: ``def preprocess(self, image, mask=None)``."""
        raise NotImplementedError(f"task {self.name!r} must implement preprocess()")

    def forward(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        """The inference computation on a preprocessed batch: what the pipeline runs between
        :meth:`preprocess` and :meth:`postprocess`, what ``export`` traces, and what the default
        :meth:`loss` trains. Calls the :attr:`inference_model_name` model; override when inference
        is more than one call. Evaluation reads :meth:`predict_for_metrics` instead."""
        return models[self.inference_model_name](inputs)

    def domain_features(self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        """Feature maps (NxCxhxw) of a preprocessed batch that :mod:`imgzoo.domain` measures the
        distance to the training pictures with: a network's bottleneck, say. Only a task that
        uses :attr:`domain_statistics` implements it."""
        raise NotImplementedError(f"task {self.name!r} has no domain features")

    def postprocess(self, output: torch.Tensor, image: np.ndarray) -> np.ndarray:
        """Turn one model output (CxHxW) into an HxWxC result of :meth:`output_size`, of the
        declared :attr:`output_kind` and :attr:`output_channels`. ``image`` (and the named
        inputs, as for :meth:`preprocess`) are what :meth:`preprocess` received."""
        raise NotImplementedError(f"task {self.name!r} must implement postprocess()")

    def standalone_module(self, models: Mapping[str, torch.nn.Module]) -> torch.nn.Module | None:
        """The whole of ``run()`` on one 8-bit picture as one module, for ``imgzoo export TASK
        --standalone`` (one ONNX graph that needs no imgzoo): a uint8 HxWxC tensor in (C as the
        task accepts, 1 or 3), its uint8 HxWxC result out. ``preprocess``, ``forward`` and
        ``postprocess`` are written in tensor operations that a trace keeps for any H, W and C:
        sizes read with ``torch._shape_as_tensor`` and computed on as tensors, choices made with
        ``torch.where``, never a Python ``if`` on a size or a value. ``models`` are those of
        :meth:`prepare_inference`, in eval mode, fp32 on the CPU. The export checks the graph
        against ``run(precision="fp32")``. None (the default): the task's processing is Python
        code, and the export says so; raise an :class:`~imgzoo.ExportError` naming the step for a
        config whose processing cannot be a graph."""
        return None

    # ── training ──────────────────────────────────────────────────────────────────────────
    def make_pair(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a training sample (already cropped to ``image_size``) into (input, target)
        tensors, CxHxW each, in the spaces the model reads and writes. Random corruption (holes,
        noise, blur) draws from ``sample.rng``, never from a global generator, so that a
        resumed run and every evaluation of the validation split (``sample.split``) see the
        same draws."""
        raise NotImplementedError(f"task {self.name!r} must implement make_pair()")

    def augmentations(self) -> dict[str, Any]:
        """Which paired augmentations the data pipeline may apply identically to input and
        target, as keyword arguments of ``imgzoo.data.PairTransform``."""
        return {"random_crop": True, "flip": True}

    def configure_optimizers(self, models: Mapping[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per name; :meth:`training_step` refers to them by that name."""
        import torch

        params = models[self.inference_model_name].parameters()
        return {self.inference_model_name: torch.optim.Adam(params, lr=self.config.learning_rate)}

    def loss(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Training loss of a single-model task (used by the default :meth:`training_step`)."""
        import torch.nn.functional as F

        return F.l1_loss(self.forward(models, inputs), targets)

    def training_step(
        self,
        models: Mapping[str, torch.nn.Module],
        batch: tuple[torch.Tensor, torch.Tensor],
        ctx: StepContext,
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch; returns named losses for logging.

        The default fits single-model tasks. A task with several models overrides it and
        calls ``ctx.optimize(name, loss)`` once per optimizer, in its own order.
        """
        inputs, targets = batch
        loss = self.loss(models, inputs, targets)
        return {"loss": ctx.optimize(self.inference_model_name, loss)}

    def state_dict(self) -> dict[str, Any]:
        """What the task itself learns during a run besides its models' weights (running
        statistics, say), as JSON values. Checkpoints keep it so that a resumed run continues
        exactly; most tasks have none."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on ``--resume``)."""

    # ── evaluation ────────────────────────────────────────────────────────────────────────
    def predict_for_metrics(
        self, models: Mapping[str, torch.nn.Module], inputs: torch.Tensor
    ) -> torch.Tensor:
        """Outputs in the same space as :meth:`make_pair`'s targets, for :meth:`metrics` and the
        trainer's pictures. The default is :meth:`forward`; override where inference output and
        targets differ (clamped to [0, 1], without the test-time tricks inference adds)."""
        return self.forward(models, inputs)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> dict[str, float]:
        """Evaluation metrics of a batch: model-space NxCxHxW tensors as :meth:`predict_for_metrics` and
        :meth:`make_pair` give them (``inputs`` with every channel the task stacked in), each
        value the mean over the batch; the evaluator weighs each batch's means by its size.
        :attr:`primary_metric` picks the one that selects the best checkpoint."""
        from imgzoo.metrics import l1, psnr

        images, references = self.to_display(outputs), self.to_display(targets)
        return {"l1": l1(images, references), "psnr": psnr(images, references)}

    def degrade(
        self, image: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """What a user would pass to ``run()`` to get the truth ``image`` back (HxWx3 float32 RGB
        in [0, 1]): the image, HxWxC float32 in [0, 1] (gray for a colorizer, the edge map for an
        edges-to-photo task, the noisy or the downscaled picture for a restorer), or, for a task
        with :attr:`extra_inputs`, ``(image, {name: value})`` with each named input as ``run()``
        takes it (an inpainting task's holed picture and its ``mask``). Random corruption draws
        from ``rng``, which is the same for a picture at every evaluation. Only the
        whole-pipeline evaluation (``imgzoo eval --full-resolution``) calls it, and
        :meth:`make_pair` may (``self.degrade(sample.image, sample.rng)``); a task without it
        can be evaluated that way on paired data only."""
        raise NotImplementedError(f"task {self.name!r} does not implement degrade()")

    def image_metrics(
        self, results: torch.Tensor, truths: torch.Tensor, inputs: torch.Tensor
    ) -> dict[str, float]:
        """Metrics of the whole-pipeline evaluation, on one picture at its own resolution: what
        ``run()`` returned, the truth, and what it was given (from :meth:`degrade`), each a
        1x3xHxW RGB tensor in [0, 1] (``inputs`` at its own size, which may differ). The default:
        L1 and PSNR; a task adds its own, and the baseline of its input where that means something."""
        from imgzoo.metrics import l1, psnr

        return {"l1": l1(results, truths), "psnr": psnr(results, truths)}

    primary_metric: ClassVar[tuple[str, str]] = ("psnr", "max")
    """(metric name, "max" or "min"): what "best" means for checkpoints."""

    def to_display(self, tensor: torch.Tensor) -> torch.Tensor:
        """Map a batch of model-space tensors (inputs, outputs or targets) to RGB in [0, 1],
        Nx3xHxW, for metrics and the picture grids the trainer saves."""
        batch = tensor.float().clamp(0, 1)
        return batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass(frozen=True)
class TaskDeclaration:
    """A task announced without importing it: what ``imgzoo list`` and ``imgzoo info`` show,
    and where its class lives. A plugin registers it from its (cheap) plugin module::

        register(imgzoo.TaskDeclaration(
            name="sepia", description="Sepia toning", task_class="imgzoo_sepia.task:SepiaTask",
            config=SepiaConfig,
        ))

    The class's module, with its torch and model imports at the top, is imported when the task
    is first used; its ``name``, ``Config``, ``scale``, ``output_kind`` and ``extra_inputs``
    must then be the declared ones.
    """

    name: str
    """Public name: ``imgzoo.run(name, image)``. Lowercase, digits and dashes."""
    description: str
    """One line shown by ``imgzoo list``."""
    task_class: str
    """Where the class lives, ``"package.module:ClassName"``."""
    config: type[TaskConfig] = TaskConfig
    """The class's ``Config``: keep it in a module that does not import torch."""
    scale: int = 1
    """The class's :attr:`Task.scale`."""
    output_kind: OutputKind = "image"
    """The class's :attr:`Task.output_kind`."""
    extra_inputs: tuple[InputSpec, ...] = ()
    """The class's :attr:`Task.extra_inputs`."""

    def import_class(self) -> object:
        """Import :attr:`task_class` (whatever it turns out to be: the caller checks it)."""
        module_name, _, attribute = self.task_class.partition(":")
        value: object = import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
        return value

    def disagreements(self, task_class: type[Task]) -> list[str]:
        """Where the imported class contradicts this declaration (empty when it does not)."""
        declared = {
            "name": self.name,
            "Config": self.config,
            "scale": self.scale,
            "output_kind": self.output_kind,
            "extra_inputs": tuple(self.extra_inputs),
        }
        return [
            f"{attribute} is {actual!r} in the class but {expected!r} in the declaration"
            for attribute, expected in declared.items()
            if (actual := _as_tuple(getattr(task_class, attribute))) != expected
        ]


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def declaration_problems(declared: type[Task] | TaskDeclaration) -> list[str]:
    """What is wrong with a task's declared contract (empty when nothing is); checked when a
    plugin registers the task (and again for the class, when a declared one is imported), so
    that a broken declaration fails its plugin at once."""
    problems = []
    scale = declared.scale
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        problems.append(f"scale must be a positive int, got {scale!r}")
    if declared.output_kind not in ("image", "map"):
        problems.append(f"output_kind must be 'image' or 'map', got {declared.output_kind!r}")
    # A declaration carries only what listing needs; the rest is checked on its class.
    channels = getattr(declared, "output_channels", None)
    if channels is not None:
        whole = isinstance(channels, int) and not isinstance(channels, bool)
        if not whole or (channels not in (1, 3, 4) if declared.output_kind == "image" else channels < 1):
            problems.append(
                "output_channels must be None, 1, 3 or 4 for an image, or a positive int for a map; "
                f"got {channels!r}"
            )
    if getattr(declared, "tiling", None) is not None and (
        declared.extra_inputs
        or getattr(declared, "wants_alpha", False)
        or getattr(declared, "takes_stored_pixels", False)
    ):
        problems.append(
            "tiling cuts the image alone, into float tiles: a task with extra_inputs, wants_alpha "
            "or takes_stored_pixels cannot declare it"
        )
    config = declared.config if isinstance(declared, TaskDeclaration) else declared.Config
    fields = set(config.model_fields)
    for name in getattr(declared, "request_options", ()):
        problem = request_option_problem(config, name)
        if problem:
            problems.append(f"request_options: {problem}")
    seen: set[str] = set()
    for spec in declared.extra_inputs:
        if not isinstance(spec, InputSpec):
            problems.append(f"extra_inputs must hold imgzoo.InputSpec objects, got {spec!r}")
            continue
        if not spec.name.isidentifier() or spec.name in RESERVED_INPUT_NAMES or spec.name in seen:
            problems.append(
                f"input name {spec.name!r} must be a Python identifier, used once, and none of "
                f"{sorted(RESERVED_INPUT_NAMES)}"
            )
        if spec.name in fields:
            problems.append(
                f"input {spec.name!r} has the name of a config field: keyword arguments of imgzoo.run "
                "could not tell them apart; rename one"
            )
        if spec.channels not in (None, 1, 3):
            problems.append(f"input {spec.name!r}: channels must be None, 1 or 3, got {spec.channels!r}")
        if spec.kind not in ("image", "mask", "map"):
            problems.append(f"input {spec.name!r}: kind must be 'image', 'mask' or 'map', got {spec.kind!r}")
        seen.add(spec.name)
    return problems


def request_option_problem(config: type[BaseModel], name: str) -> str | None:
    """Why config field ``name`` cannot be a request option (None when it can): it must exist
    and take a bounded range of values."""
    from typing import get_origin

    field = config.model_fields.get(name)
    if field is None:
        return f"{name!r} is not a config field"
    kind = field.annotation
    if kind is bool or get_origin(kind) is Literal:
        return None
    if kind in (int, float):
        bounds = {type(rule).__name__ for rule in field.metadata}
        if bounds & {"Ge", "Gt"} and bounds & {"Le", "Lt"}:
            return None
    return f"{name!r} must be a bool, a Literal, or an int or float with lower and upper bounds"
