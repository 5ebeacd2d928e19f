"""Every error imgzoo raises on purpose.

    ZooError                      base: catch this to catch them all
    ├── UnknownTaskError          no registered task has that name (suggests close names)
    ├── InvalidImageError         an input could not be read as an image (says what was wrong)
    ├── InputError                a task's named input is missing, unknown or breaks the task's rules
    ├── ArgumentError             an argument or command-line value that is malformed or out of range
    ├── DeviceError               a device that is unknown or not available here, or an unknown precision
    ├── TaskBugError              a task broke its own declaration (an output of the wrong size or kind)
    ├── TaskContractError         a contract check of the test kit failed (also an AssertionError)
    ├── ResultError               a result that cannot be handed back: NaN values, or not one per image
    ├── OutputError               an output path refused, or a result that cannot be written there
    │   └── OutputExistsError     the output exists and replacing it was not allowed (a FileExistsError)
    ├── WeightsError              weights missing, corrupt, of the wrong hash, task or shape
    ├── CheckpointError           a training checkpoint that cannot be written, read or resumed from
    ├── ConfigError               a config value failed validation (field by field)
    ├── RegistryError             a registry file that is missing, unreadable or malformed
    ├── PluginError               a plugin failed to load or broke the plugin contract
    ├── DataError                 a training/evaluation data source is empty, missing or inconsistent
    ├── TilingError               a tiling that cannot work: a task that cannot be tiled, bad sizes
    ├── RequestError              an HTTP request the server refuses: too large, busy, too slow, ...
    ├── MemoryBudgetError         a job whose memory estimate exceeds what it may use (before it starts)
    ├── MissingExtraError         an optional feature's packages are not installed (names the extra)
    ├── ExportError               a model that cannot be exported, or whose export does not reproduce it
    └── BackendError              an inference backend that cannot run here (a device, a precision)

Each error says what went wrong *and* what to do next; the CLI prints ``str(error)`` as one
line (a few for field-by-field config errors) and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ArgumentError",
    "BackendError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "ExportError",
    "InputError",
    "InvalidImageError",
    "MemoryBudgetError",
    "MissingExtraError",
    "OutputError",
    "OutputExistsError",
    "PluginError",
    "RegistryError",
    "RequestError",
    "ResultError",
    "TaskBugError",
    "TaskContractError",
    "TilingError",
    "UnknownTaskError",
    "WeightsError",
    "ZooError",
]


class ZooError(Exception):
    """Base class of every error imgzoo raises on purpose."""


class UnknownTaskError(ZooError, LookupError):
    """No registered task has this name."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif self.known:
            hint = "known tasks: " + ", ".join(self.known)
        else:
            hint = "no tasks are registered: is a plugin installed? (see `imgzoo plugins`)"
        super().__init__(f"unknown task {name!r}: {hint}")


class InvalidImageError(ZooError, ValueError):
    """An input could not be turned into an image; the message says why."""

    def __init__(self, message: str, *, source: object = None) -> None:
        self.source = source
        super().__init__(message)


class InputError(ZooError, ValueError):
    """A task's named input (``mask=...``, ``--input mask=...``) is missing, unknown, or breaks
    the rules the task declares for it (its size, its channels). ``task`` and ``input`` name it."""

    def __init__(self, message: str, *, task: str, input: str) -> None:
        self.task = task
        self.input = input
        super().__init__(message)


class ArgumentError(ZooError, ValueError):
    """An argument of an imgzoo function or command (``batch_size``, ``--input NAME=PATH``, a
    new plugin's name) that is malformed or out of range; ``argument`` names it."""

    def __init__(self, message: str, *, argument: str) -> None:
        self.argument = argument
        super().__init__(message)


class DeviceError(ZooError, ValueError):
    """A device that is unknown or not available on this machine, or a precision that is not one
    of imgzoo's. ``device`` or ``precision`` holds what was asked for."""

    def __init__(self, message: str, *, device: str | None = None, precision: str | None = None) -> None:
        self.device = device
        self.precision = precision
        super().__init__(message)


class TaskBugError(ZooError):
    """A task did something its own declaration rules out (an output of another size, channel
    count or kind than it declares): a bug in the task's plugin, not in the caller's input."""

    def __init__(self, task: str, problem: str) -> None:
        self.task = task
        super().__init__(
            f"task {task!r} {problem}: this is a bug in the task's plugin, not in your input; "
            "report it to the plugin's author"
        )


class TaskContractError(ZooError, AssertionError):
    """A task fails a check of :mod:`imgzoo.testing` (pytest reports it as a failed assertion);
    ``task`` names the task, when known, and the message says what is wrong."""

    def __init__(self, message: str, *, task: str | None = None) -> None:
        self.task = task
        super().__init__(message)


class ResultError(ZooError, ValueError):
    """A result that cannot be handed back: NaN or infinite values (a model that diverged, or
    weights that do not fit it), or results that do not match the images they are for."""


class OutputError(ZooError):
    """An output path that a run refuses (it would replace an input, two results would share
    it, its format cannot hold the result), or a result that could not be written there.
    ``path`` is the output at fault, when there is one."""

    def __init__(self, message: str, *, path: object = None) -> None:
        self.path = path
        super().__init__(message)


class OutputExistsError(OutputError, FileExistsError):
    """An output that exists already, when replacing it was not allowed (``--overwrite``)."""


class WeightsError(ZooError):
    """Weights could not be found, downloaded, verified or loaded.

    ``path`` is the file involved and ``tensor`` the tensor at fault, when there is one.
    """

    def __init__(self, message: str, *, path: object = None, tensor: str | None = None) -> None:
        self.path = path
        self.tensor = tensor
        super().__init__(message)


class CheckpointError(ZooError):
    """A training checkpoint that could not be written, or is unreadable, incomplete or of
    another run, so training cannot resume from it; ``path`` is the checkpoint's folder."""

    def __init__(self, message: str, *, path: object = None) -> None:
        self.path = path
        super().__init__(message)


class ConfigError(ZooError, ValueError):
    """A task's config (or, with ``task=""``, a setting of imgzoo's own, such as an environment
    variable) did not validate. ``errors`` holds one ``(field, message)`` per problem."""

    def __init__(self, task: str, errors: Sequence[tuple[str, str]], *, source: str = "") -> None:
        self.task = task
        self.errors = list(errors)
        where = f" (from {source})" if source else ""
        subject = f"config for task {task!r}" if task else "setting"
        lines = [f"invalid {subject}{where}:"]
        lines += [f"  {field}: {message}" for field, message in self.errors]
        super().__init__("\n".join(lines))

    @classmethod
    def from_validation_error(cls, task: str, error: Any, *, source: str = "") -> ConfigError:
        """Build from a ``pydantic.ValidationError``, one line per failing field."""
        problems = []
        for item in error.errors():
            field = ".".join(str(part) for part in item.get("loc", ())) or "(config)"
            message = item.get("msg", "invalid value")
            if item.get("type") == "extra_forbidden":
                message = "unknown field (check the spelling; `imgzoo info TASK --schema` lists fields)"
            elif "input" in item and not isinstance(item["input"], Mapping):
                message = f"{message} (got {item['input']!r})"
            problems.append((field, message))
        return cls(task, problems, source=source)


class RegistryError(ZooError, ValueError):
    """A registry file (imgzoo's own registry.toml, or one given to :func:`imgzoo.add_registry`)
    that is missing, unreadable or malformed; ``path`` is the file."""

    def __init__(self, message: str, *, path: object = None) -> None:
        self.path = path
        super().__init__(message)


class PluginError(ZooError):
    """A plugin failed to import, or broke the plugin contract (for example, a duplicate task)."""

    def __init__(self, message: str, *, plugin: str | None = None, distribution: str | None = None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        super().__init__(message)


class DataError(ZooError, ValueError):
    """A data source for training or evaluation is missing, empty or inconsistent."""

    def __init__(self, message: str, *, path: object = None) -> None:
        self.path = path
        super().__init__(message)


class TilingError(ZooError, ValueError):
    """Tiled inference was asked of a task that cannot be tiled, or with sizes that cannot work."""


class RequestError(ZooError):
    """A request to ``imgzoo serve`` that the server refuses for itself (not for its image):
    too large, of a content type it cannot read, a full queue, a missed deadline. ``status`` is
    the HTTP status it is answered with, ``retry_after`` the seconds to wait when it is worth
    retrying."""

    def __init__(self, message: str, *, status: int, task: str | None = None, retry_after: int | None = None):
        self.status = status
        self.task = task
        self.retry_after = retry_after
        super().__init__(message)


class MemoryBudgetError(ZooError, ValueError):
    """A job (a run, a server request or batch) whose memory estimate, made before it starts,
    exceeds what it may use, or a training run that ran out of memory in the step it measures
    before it starts. ``needed`` and ``limit`` are in bytes (None where they are not known)."""

    def __init__(self, message: str, *, needed: int | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.needed = needed
        self.limit = limit


class MissingExtraError(ZooError, ImportError):
    """A feature needs a package that is not installed; ``missing`` names it, ``extra`` the
    optional dependency group that brings it (``pip install 'imgzoo[serve]'``) and ``purpose``
    what needed it."""

    def __init__(self, missing: str, *, extra: str, purpose: str) -> None:
        self.missing = missing
        self.extra = extra
        self.purpose = purpose
        super().__init__(f"{missing} is not installed ({purpose}): pip install 'imgzoo[{extra}]'")


class ExportError(ZooError):
    """A task's inference model could not be exported (an operation without an equivalent in the
    format, a trace that does not reproduce the model), or the file could not be written.
    ``task`` and ``format`` name what was being exported."""

    def __init__(self, message: str, *, task: str, format: str) -> None:
        self.task = task
        self.format = format
        super().__init__(message)


class BackendError(ZooError):
    """An inference backend cannot run here: it is unknown, or it does not support the device or
    precision asked for (a missing package is a :class:`MissingExtraError`). ``backend`` names it."""

    def __init__(self, message: str, *, backend: str) -> None:
        self.backend = backend
        super().__init__(message)
