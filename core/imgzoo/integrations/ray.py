"""Ray: batch inference on Ray Data and the HTTP server on Ray Serve, both through :meth:`Pipeline.run`.

    >>> import ray
    >>> from imgzoo.integrations.ray import TaskPredictor
    >>> pictures = ray.data.read_images("photos/")  # a column "image" of uint8 arrays
    >>> colored = pictures.map_batches(
    ...     TaskPredictor, fn_constructor_kwargs={"task": "colorize"}, concurrency=2
    ... )

``imgzoo run TASK INPUT... --engine ray`` runs a folder run on Ray Data, and
``imgzoo serve TASK... --engine ray --replicas N`` the server's own application on Ray Serve.
Each Ray worker loads the task from the installed plugins and registries (``IMGZOO_REGISTRY``):
a task or registry added in the driver process alone (``imgzoo.register_plugin``,
``imgzoo.add_registry``) is not seen there. Needs the ``ray`` extra
(``pip install "imgzoo[ray]"``); importing this module does not.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgzoo import plugins
from imgzoo.errors import ArgumentError, InputError, MissingExtraError, ZooError
from imgzoo.model_cache import cached_pipeline
from imgzoo.options import split_options
from imgzoo.pipeline import check_batch_size, deliver, prepare_requests

if TYPE_CHECKING:
    from imgzoo.serve.settings import ServeSettings

__all__ = ["TaskPredictor", "require_ray", "run_files", "serve_application", "serve_on_ray"]


def require_ray(purpose: str, *, serve: bool = False) -> None:
    """Raise :class:`~imgzoo.errors.MissingExtraError` when Ray Data (or Ray Serve) is missing."""
    try:
        # Ray's modules warn about their own use of deprecated pydantic and Ray APIs as they are
        # imported: nothing the user can act on, and the CLI would print each warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import ray.data

            if serve:
                import ray.serve  # noqa: F401
    except ImportError:
        raise MissingExtraError("ray[data,serve]", extra="ray", purpose=purpose) from None


class TaskPredictor:
    """A task for ``Dataset.map_batches``: each batch's images run through :meth:`Pipeline.run`.

    ``map_batches(TaskPredictor, fn_constructor_kwargs={"task": "inpaint", "weights": ...},
    concurrency=N, num_gpus=1)``: each Ray actor loads the pipeline once. A batch's
    ``image_column`` holds the images in any form :func:`imgzoo.run` reads (uint8 arrays as
    ``ray.data.read_images`` gives, encoded bytes as ``read_binary_files`` gives, file paths);
    the task's named inputs come as columns of their own names. The result, what
    :func:`imgzoo.run` returns for the same image, is added as ``result_column``; with
    ``save_column``, each result is also saved to the file that column names (as
    ``imgzoo run`` saves it). The other keyword ``options`` are the task's config fields and
    ``tile``, as :func:`imgzoo.run` takes them.
    """

    def __init__(
        self,
        task: str,
        *,
        weights: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        backend: str = "torch",
        config_file: str | None = None,
        batch_size: int = 8,
        image_column: str = "image",
        result_column: str = "result",
        save_column: str | None = None,
        **options: Any,
    ) -> None:
        self.task_class = plugins.get_task_class(task)
        self.batch_size = check_batch_size(batch_size)
        inputs, settings = split_options(self.task_class, options)
        for name in sorted(inputs):
            raise ArgumentError(
                f"{name!r} is an input of task {task!r}, one per image: give it as a column named {name!r}",
                argument=name,
            )
        self.image_column = image_column
        self.result_column = result_column
        self.save_column = save_column
        self.pipeline = cached_pipeline(
            task,
            weights=weights,
            device=device,
            precision=precision,
            backend=backend,
            config_file=config_file,
            options=settings,
        )

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch's columns, with the results added as ``result_column``."""
        if self.image_column not in batch:
            raise InputError(
                f"task {self.task_class.name!r}: the batch has no column {self.image_column!r} (its columns: "
                f"{', '.join(map(repr, batch))}): name the images' column with image_column=",
                task=self.task_class.name,
                input=self.image_column,
            )
        named = {
            spec.name: list(batch[spec.name]) for spec in self.task_class.extra_inputs if spec.name in batch
        }
        requests, spec = prepare_requests(self.task_class, list(batch[self.image_column]), named)
        if self.save_column is not None:
            for request, target in zip(requests, batch[self.save_column], strict=True):
                request.save_to = Path(str(target))
        results = self.pipeline.run(requests, batch_size=self.batch_size)
        outputs = deliver(results, spec, self.task_class.output_kind)
        return {**batch, self.result_column: _column(outputs)}


def _column(values: Sequence[np.ndarray]) -> np.ndarray:
    """Arrays as one column: stacked when they share a shape, else an array of arrays (what
    Ray Data stores as a variable-shaped tensor column)."""
    if len({value.shape for value in values}) == 1:
        return np.stack(values)
    column = np.empty(len(values), dtype=object)
    column[:] = list(values)
    return column


# ── imgzoo run --engine ray ───────────────────────────────────────────────────────────────
def run_files(
    task: str,
    work: Sequence[tuple[Path, Path]],
    named_inputs: Mapping[str, Sequence[Path]],
    *,
    concurrency: int | None = None,
    **predictor: Any,
) -> int:
    """Run ``task`` on Ray Data over (input file, output file) pairs planned as ``imgzoo run``
    plans them, with each named input's file per pair; returns how many were written.
    ``concurrency``: the actors running the model (default: one per GPU of the cluster when the
    device may be a GPU, else one per CPU). ``predictor``: :class:`TaskPredictor`'s settings."""
    require_ray(f"for imgzoo run {task} --engine ray")
    import ray

    ray.init(ignore_reinit_error=True, log_to_driver=False)  # RAY_ADDRESS, if set, names the cluster
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpus = gpus > 0 and str(predictor.get("device", "auto")).split(":")[0] in ("auto", "cuda")
    actors = concurrency or (gpus if use_gpus else max(1, int(ray.cluster_resources().get("CPU", 1))))
    rows = [
        {
            "image": str(source),
            "save_to": str(target),
            **{name: str(paths[index]) for name, paths in named_inputs.items()},
        }
        for index, (source, target) in enumerate(work)
    ]
    batch_size = int(predictor.get("batch_size", 8))
    # The task's own error (an unreadable input) reaches the user as one line: Ray Data would
    # wrap it in its UserCodeException, which keeps only the text of it.
    ray.data.DataContext.get_current().raise_original_map_exception = True
    dataset = ray.data.from_items(rows).map_batches(
        TaskPredictor,
        fn_constructor_kwargs={"task": task, "save_column": "save_to", **predictor},
        batch_size=batch_size,
        concurrency=(1, actors),  # more only when there are inputs to share out
        num_gpus=1 if use_gpus else 0,
        num_cpus=0 if use_gpus else 1,
    )
    written = 0
    try:
        for batch in dataset.select_columns(["save_to"]).iter_batches(batch_size=None):
            written += len(batch["save_to"])
    except Exception as error:
        raise _original_error(error) from error
    return written


def _original_error(error: BaseException) -> BaseException:
    """The :class:`ZooError` a Ray worker raised, out of the exceptions Ray wraps it in (their
    messages hold the worker's traceback); another error as Ray gave it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ZooError) and not _is_ray_wrapper(seen):
            # Ray Data appends its retry advice to the message, after a line break; an
            # imgzoo error is one line.
            if seen.args and isinstance(seen.args[0], str):
                seen.args = (seen.args[0].split("\n", 1)[0], *seen.args[1:])
            return seen
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return error


def _is_ray_wrapper(error: BaseException) -> bool:
    return type(error).__module__.startswith("ray.")


# ── imgzoo serve --engine ray ─────────────────────────────────────────────────────────────
def serve_application(tasks: Sequence[str], settings: ServeSettings, *, replicas: int = 1) -> Any:
    """The server's application (:func:`imgzoo.serve.create_app`: the same endpoints, limits,
    errors, page and batching settings) as a Ray Serve deployment of ``replicas`` replicas, bound
    and ready for ``serve.run``. Each replica batches its own requests; it takes up to
    ``settings.queue`` at once, as one server does."""
    require_ray("for imgzoo serve --engine ray", serve=True)
    from ray import serve

    from imgzoo.serve import create_app, require_serve_extra

    require_serve_extra()
    if replicas < 1:
        raise ArgumentError(f"--replicas must be at least 1, got {replicas}", argument="--replicas")
    settings.check()
    for name in tasks:
        plugins.get_task_class(name)  # an unknown name fails here, not in a replica

    class ImgzooServer:
        """Builds the application in the replica (it holds threads and locks: it does not travel)."""

        def __init__(self, tasks: list[str], settings: ServeSettings) -> None:
            self.tasks = tasks
            self.settings = settings

        def __serve_build_asgi_app__(self) -> Any:
            return create_app(self.tasks, self.settings)

    deployment = serve.deployment(name="imgzoo", num_replicas=replicas, max_ongoing_requests=settings.queue)
    return deployment(serve.ingress()(ImgzooServer)).bind(list(tasks), settings)


def serve_on_ray(
    tasks: Sequence[str], settings: ServeSettings, *, host: str, port: int, replicas: int
) -> None:
    """Serve on Ray Serve (a local cluster, or the one ``RAY_ADDRESS`` names) until interrupted."""
    application = serve_application(tasks, settings, replicas=replicas)
    import ray
    from ray import serve

    ray.init(ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    serve.run(application, name="imgzoo", route_prefix="/", blocking=True)
