"""Finding, loading and asking plugins: the only module that talks to pluggy.

Plugins come from the ``imgzoo`` entry-point group (built-in ones too) and from
:func:`register_plugin` (tests, notebooks). Loading is lazy, happens once, and is forgiving: a
plugin that fails to import, implements a hook that does not exist, targets another plugin API,
or raises in a hook (``SystemExit`` included: only ``KeyboardInterrupt`` gets through) is marked
*failed* with the reason, a warning names it, and the rest of the zoo keeps working. A task or
dataset name that two plugins register is usable from neither, and each plugin lists the clash.
``imgzoo plugins`` shows the state of each.

Environment:
    IMGZOO_PLUGINS           comma-separated allow-list of plugin names; only these load
    IMGZOO_DISABLE_PLUGINS   comma-separated plugin names that must not load
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from imgzoo import hookspecs
from imgzoo.errors import PluginError, UnknownTaskError

if TYPE_CHECKING:
    from imgzoo.data.base import DatasetFactory
    from imgzoo.task import Task, TaskDeclaration

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "dataset_factories",
    "get_task_class",
    "plugin_infos",
    "register_plugin",
    "registry_files",
    "reload_plugins",
    "task_declaration",
    "task_declarations",
    "unregister_plugin",
]

ENTRY_POINT_GROUP = "imgzoo"
ENV_ALLOW = "IMGZOO_PLUGINS"
ENV_DENY = "IMGZOO_DISABLE_PLUGINS"
TASK_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


@dataclass
class PluginInfo:
    """What ``imgzoo plugins`` shows about one plugin."""

    name: str
    module: str = ""
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"  # "loaded", "failed" or "disabled"
    plugin_api: list[int] | None = None
    """The plugin API versions the plugin declares with ``IMGZOO_PLUGIN_API`` (None: it declares none)."""
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)
    """Names this plugin registers that another plugin registers too; neither is usable."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _RegisteredTask:
    declaration: TaskDeclaration
    task_class: type[Task] | None = None
    """Registered classes from the start; declared ones once first used."""


@dataclass
class _Loaded:
    """Everything the plugins contributed, collected in one pass."""

    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    claims: dict[str, list[tuple[_RegisteredTask, str]]] = field(default_factory=dict)
    tasks: dict[str, tuple[_RegisteredTask, str]] = field(default_factory=dict)
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    dataset_claims: dict[str, list[tuple[tuple[DatasetFactory, str], str]]] = field(default_factory=dict)
    datasets: dict[str, tuple[tuple[DatasetFactory, str], str]] = field(default_factory=dict)
    dataset_conflicts: dict[str, list[str]] = field(default_factory=dict)
    registry_files: list[tuple[Path, str]] = field(default_factory=list)
    setting_problems: list[str] = field(default_factory=list)


_lock = threading.RLock()
_loaded: _Loaded | None = None
_extra_plugins: dict[str, object] = {}


# ── public API ────────────────────────────────────────────────────────────────────────────
def register_plugin(plugin: object, name: str | None = None) -> str:
    """Add a plugin object or module at run time (tests, notebooks); takes effect at once."""
    name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
    with _lock:
        _extra_plugins[name] = plugin
        reload_plugins()
    return name


def unregister_plugin(name: str) -> None:
    """Remove a plugin added with :func:`register_plugin`."""
    with _lock:
        _extra_plugins.pop(name, None)
        reload_plugins()


def reload_plugins() -> None:
    """Forget what was loaded; the next use loads the plugins again."""
    global _loaded
    with _lock:
        _loaded = None


def plugin_infos() -> list[PluginInfo]:
    return sorted(_state().plugins.values(), key=lambda info: info.name)


def task_declarations() -> dict[str, TaskDeclaration]:
    """Every usable task: name -> its declaration (conflicting names excluded); imports no task."""
    return {name: registered.declaration for name, (registered, _) in _state().tasks.items()}


def task_plugin(name: str) -> str:
    return _state().tasks[name][1]


def task_declaration(name: str) -> TaskDeclaration:
    """What a task declares (its config, inputs, output kind), without importing its class."""
    return _registered_task(name)[0].declaration


def get_task_class(name: str) -> type[Task]:
    """The task's class, imported on first use and held to its declaration."""
    registered, plugin = _registered_task(name)
    with _lock:
        if registered.task_class is None:
            registered.task_class = _import_task_class(registered.declaration, plugin)
        return registered.task_class


def _registered_task(name: str) -> tuple[_RegisteredTask, str]:
    state = _state()
    if name in state.conflicts:
        raise clash_error("task", name, state.conflicts[name])
    if name not in state.tasks:
        raise UnknownTaskError(name, state.tasks)
    return state.tasks[name]


def _import_task_class(declaration: TaskDeclaration, plugin: str) -> type[Task]:
    from imgzoo.task import Task, declaration_problems

    where = f"task {declaration.name!r} (plugin {plugin!r}, class {declaration.task_class})"
    try:
        task_class = declaration.import_class()
    except Exception as error:
        raise PluginError(
            f"{where} cannot be imported: {type(error).__name__}: {error}; reinstall the plugin, "
            f"or disable it with {ENV_DENY}={plugin}",
            plugin=plugin,
        ) from error
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise PluginError(f"{where} is {task_class!r}, not an imgzoo.Task subclass", plugin=plugin)
    problems = declaration.disagreements(task_class) + declaration_problems(task_class)
    if problems:
        raise PluginError(
            f"{where} does not match what the plugin declares: {'; '.join(problems)}; make them agree",
            plugin=plugin,
        )
    return task_class


def clash_error(kind: str, name: str, owners: list[str]) -> PluginError:
    """The error for a task or dataset name that several plugins register."""
    named = " and ".join(repr(owner) for owner in owners)
    return PluginError(
        f"{kind} {name!r} is registered by {len(owners)} plugins, {named}, so none of them is used: "
        f"disable all but one with {ENV_DENY}=<plugin name> (see `imgzoo plugins`)",
        plugin=owners[-1],
    )


def task_conflicts() -> dict[str, list[str]]:
    """Task names registered by more than one plugin -> those plugins (the names are unusable)."""
    return {name: list(owners) for name, owners in _state().conflicts.items()}


def dataset_conflicts() -> dict[str, list[str]]:
    """Dataset names registered by more than one plugin -> those plugins (the names are unusable)."""
    return {name: list(owners) for name, owners in _state().dataset_conflicts.items()}


def dataset_factories() -> dict[str, DatasetFactory]:
    """Every usable dataset: name -> factory (names registered by several plugins excluded)."""
    return {name: factory for name, ((factory, _), _) in _state().datasets.items()}


def dataset_descriptions() -> dict[str, str]:
    return {name: description for name, ((_, description), _) in _state().datasets.items()}


def registry_files() -> list[Path]:
    return [path for path, _ in _state().registry_files]


def load_errors() -> list[PluginInfo]:
    return [info for info in _state().plugins.values() if info.status == "failed"]


def setting_problems() -> list[str]:
    """What is wrong with IMGZOO_PLUGINS / IMGZOO_DISABLE_PLUGINS (names that match no plugin)."""
    return list(_state().setting_problems)


# ── loading ───────────────────────────────────────────────────────────────────────────────
def _state() -> _Loaded:
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load_all()
            for info in _loaded.plugins.values():
                if info.status == "failed":
                    warnings.warn(
                        f"imgzoo plugin {info.name!r} failed: {info.error}", RuntimeWarning, stacklevel=3
                    )
        return _loaded


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _load_all() -> _Loaded:
    loaded = _Loaded()
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    allow, deny = _names_from_env(ENV_ALLOW), _names_from_env(ENV_DENY) or set()

    candidates: list[tuple[PluginInfo, Callable[[], object]]] = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry_point, "dist", None)
        info = PluginInfo(
            name=entry_point.name,
            module=entry_point.value,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
        candidates.append((info, entry_point.load))
    for name, plugin in _extra_plugins.items():
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__qualname__
        candidates.append((PluginInfo(name=name, module=module), functools.partial(_identity, plugin)))

    # A misspelled name would otherwise switch off every plugin (or none) without a word.
    known = {info.name for info, _ in candidates}
    for variable, names in ((ENV_ALLOW, allow or set()), (ENV_DENY, deny)):
        unknown = sorted(names - known)
        if unknown:
            problem = (
                f"{variable} names no installed plugin: {', '.join(map(repr, unknown))} "
                f"(the plugins are {', '.join(map(repr, sorted(known)))}; see `imgzoo plugins`)"
            )
            loaded.setting_problems.append(problem)
            warnings.warn(problem, RuntimeWarning, stacklevel=2)

    for info, load in candidates:
        if info.name in loaded.plugins:  # the same entry point seen twice (e.g. editable + wheel)
            continue
        loaded.plugins[info.name] = info
        if (allow is not None and info.name not in allow) or info.name in deny:
            info.status = "disabled"
            continue
        with _failing_alone(info):
            plugin = load()
            info.plugin_api = _declared_api(plugin)
            _check_api_version(info.plugin_api)
            manager.register(plugin, name=info.name)
        if info.status == "failed":
            continue
        # check_pending() is what turns a misspelled hook name into an error instead of silence.
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as error:
            manager.unregister(name=info.name)
            _fail(info, error)
            continue
        info.hooks = sorted(
            caller.name for caller in manager.get_hookcallers(manager.get_plugin(info.name)) or []
        )

    _collect(manager, "register_tasks", loaded, _task_registrar)
    _collect(manager, "register_datasets", loaded, _dataset_registrar)
    _collect(manager, "register_registry_files", loaded, _registry_file_registrar)
    _settle(loaded)
    return loaded


def _settle(loaded: _Loaded) -> None:
    """Keep only what plugins that are still loaded contributed (a plugin that failed halfway
    through a hook leaves nothing behind), and turn names claimed twice into conflicts."""
    ok = {name for name, info in loaded.plugins.items() if info.status == "loaded"}
    for info in loaded.plugins.values():
        if info.name not in ok:
            info.tasks, info.datasets = [], []
    loaded.registry_files = [(path, plugin) for path, plugin in loaded.registry_files if plugin in ok]
    loaded.tasks, loaded.conflicts = _settle_claims("task", loaded.claims, ok, loaded.plugins)
    loaded.datasets, loaded.dataset_conflicts = _settle_claims(
        "dataset", loaded.dataset_claims, ok, loaded.plugins
    )


_Claimed = Any  # a _RegisteredTask, or a dataset's (factory, description)


def _settle_claims(
    kind: str,
    claims_by_name: dict[str, list[tuple[_Claimed, str]]],
    ok: set[str],
    infos: dict[str, PluginInfo],
) -> tuple[dict[str, tuple[_Claimed, str]], dict[str, list[str]]]:
    """(the names exactly one loaded plugin claims, the names several claim -> those plugins);
    each plugin of a clash records it, so that ``imgzoo plugins`` shows it."""
    winners: dict[str, tuple[_Claimed, str]] = {}
    conflicts: dict[str, list[str]] = {}
    for name, claims in claims_by_name.items():
        claims = [(claimed, plugin) for claimed, plugin in claims if plugin in ok]
        if len(claims) == 1:
            winners[name] = claims[0]
        elif len(claims) > 1:
            owners = [plugin for _, plugin in claims]
            conflicts[name] = owners
            for owner in owners:
                others = " and ".join(repr(other) for other in owners if other != owner)
                infos[owner].clashes.append(f"{kind} {name!r} is also registered by {others}: unusable")
    return winners, conflicts


def _identity(plugin: object) -> object:
    return plugin


@contextlib.contextmanager
def _failing_alone(info: PluginInfo) -> Iterator[None]:
    """Mark the plugin failed if the block raises anything but KeyboardInterrupt: a plugin that
    calls sys.exit() must not end the program that merely listed tasks."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        _fail(info, error)


def _fail(info: PluginInfo, error: BaseException) -> None:
    info.status = "failed"
    source = f" (distribution {info.distribution} {info.version})" if info.distribution else ""
    info.error = f"{type(error).__name__}: {error}{source}"


def _declared_api(plugin: object) -> list[int] | None:
    """The ``IMGZOO_PLUGIN_API`` of a plugin (an int, or a tuple of the ints it supports), sorted."""
    declared = getattr(plugin, "IMGZOO_PLUGIN_API", None)
    if declared is None:
        return None
    versions = [declared] if isinstance(declared, int) else declared
    if (
        not isinstance(versions, (list, tuple, set, frozenset))
        or not versions
        or not all(isinstance(version, int) and not isinstance(version, bool) for version in versions)
    ):
        raise PluginError(f"IMGZOO_PLUGIN_API must be an int or a non-empty tuple of ints, got {declared!r}")
    return sorted(versions)


def _check_api_version(declared: list[int] | None) -> None:
    # A plugin that declares nothing is assumed to target the current API.
    supported = hookspecs.SUPPORTED_PLUGIN_APIS
    if declared is None or any(version in supported for version in declared):
        return
    from imgzoo import __version__

    current = hookspecs.PLUGIN_API_VERSION
    provided = ", ".join(str(version) for version in supported[:-1]) + f" and {supported[-1]}"
    wanted = " or ".join(str(version) for version in declared)
    raise PluginError(
        f"targets imgzoo plugin API {wanted}, but this imgzoo ({__version__}) provides API {provided}: "
        f"install a release of the plugin that supports API {current}, or an imgzoo that provides "
        f"API {wanted}"
    )


def _collect(
    manager: pluggy.PluginManager, hook_name: str, loaded: _Loaded, make_registrar: Callable
) -> None:
    """Call one hook plugin by plugin, so that everything registered is attributed to its
    plugin and one plugin raising does not stop the others."""
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        info = loaded.plugins[impl.plugin_name]
        if info.status != "loaded":
            continue
        with _failing_alone(info):
            impl.function(register=make_registrar(loaded, info))


def _task_registrar(loaded: _Loaded, info: PluginInfo) -> Callable[[type[Task] | TaskDeclaration], None]:
    from imgzoo.task import Task, TaskConfig, TaskDeclaration, declaration_problems

    def register(task: type[Task] | TaskDeclaration) -> None:
        if isinstance(task, TaskDeclaration):
            declaration, label = task, f"TaskDeclaration {task.name!r}"
            config_name = "config"
        elif isinstance(task, type) and issubclass(task, Task):
            declaration, label = None, task.__qualname__
            config_name = f"{label}.Config"
        else:
            raise PluginError(
                f"register_tasks: expected a Task subclass or an imgzoo.TaskDeclaration, got {task!r}",
                plugin=info.name,
            )
        name = task.name
        if not isinstance(name, str) or not TASK_NAME.match(name):
            raise PluginError(
                f"{label}: the name must be lowercase letters, digits and dashes, got {name!r}",
                plugin=info.name,
            )
        config = task.config if isinstance(task, TaskDeclaration) else task.Config
        if not (isinstance(config, type) and issubclass(config, TaskConfig)):
            raise PluginError(f"{config_name} must subclass imgzoo.TaskConfig", plugin=info.name)
        problems = declaration_problems(task)
        if problems:
            raise PluginError(
                f"task {name!r} ({label}) declares a broken contract: " + "; ".join(problems),
                plugin=info.name,
            )
        if declaration is None:
            assert not isinstance(task, TaskDeclaration)
            registered = _RegisteredTask(TaskDeclaration.of(task), task_class=task)
        else:
            registered = _RegisteredTask(declaration)
        _claim(loaded.claims, name, registered, info, info.tasks)

    return register


def _claim(
    claims_by_name: dict[str, list[tuple[_Claimed, str]]],
    name: str,
    claimed: _Claimed,
    info: PluginInfo,
    names: list[str],
) -> None:
    """Record that ``info``'s plugin registers ``name``; registering it again replaces its own."""
    claims = [claim for claim in claims_by_name.get(name, []) if claim[1] != info.name]
    claims_by_name[name] = [*claims, (claimed, info.name)]
    if name not in names:
        names.append(name)


def _dataset_registrar(loaded: _Loaded, info: PluginInfo) -> Callable[..., None]:
    def register(name: str, factory: DatasetFactory, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"register_datasets: a dataset name must be a non-empty string, got {name!r}",
                plugin=info.name,
            )
        if not callable(factory):
            raise PluginError(
                f"register_datasets: the factory of {name!r} is not callable: {factory!r}", plugin=info.name
            )
        _claim(loaded.dataset_claims, name, (factory, str(description)), info, info.datasets)

    return register


def _registry_file_registrar(loaded: _Loaded, info: PluginInfo) -> Callable[[Path], None]:
    from imgzoo.catalogue import read_registry_file

    def register(path: Path | str) -> None:
        path = Path(str(path))
        read_registry_file(path)  # a broken file fails its plugin now, not every later listing
        loaded.registry_files.append((path, info.name))

    return register
