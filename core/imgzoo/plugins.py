"""Finding, loading and asking plugins: the only module that talks to pluggy.

Plugins come from the ``imgzoo`` entry-point group (built-in ones too) and from
:func:`register_plugin` (tests, notebooks). Loading is lazy, happens once, and is forgiving: a
plugin that fails to import, implements a hook that does not exist, targets another plugin API,
or raises in a hook (``SystemExit`` included: only ``KeyboardInterrupt`` gets through) is marked
*failed* with the reason, a warning names it, and the rest of the zoo keeps working. A task,
dataset, backend or command name that two plugins register is usable from neither, and each
plugin lists the clash; a backend or command that takes a built-in name leaves the built-in in
place, and its plugin lists that clash too. ``imgzoo plugins`` shows the state of each.

Hooks are called through pluggy (``pm.hook``), one plugin at a time, in pluggy's order: so that
``tryfirst``/``trylast`` and wrappers work, and yet whatever a plugin registers is known to be its
own, and a plugin that raises fails alone.

Two distributions whose entry points share a name are both loaded, each named
``DISTRIBUTION:NAME``: a package cannot replace a built-in plugin by taking its name, and the
tasks both register clash, naming both.

Environment:
    IMGZOO_PLUGINS           comma-separated allow-list of plugin names; only these load
    IMGZOO_DISABLE_PLUGINS   comma-separated plugin names that must not load
    (a plain NAME chooses every plugin of that name, DISTRIBUTION:NAME one of them)
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

import imgzoo.hookspecs as hookspecs
from imgzoo.errors import PluginError, UnknownTaskError
from imgzoo.registry_file import read_registry_file

if TYPE_CHECKING:
    import argparse

    from imgzoo.data.base import DatasetFactory
    from imgzoo.task import Task, TaskDeclaration

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginCommand",
    "PluginInfo",
    "backend_conflicts",
    "backend_entries",
    "backend_plugin",
    "command_conflicts",
    "command_entries",
    "dataset_factories",
    "get_task_class",
    "logger_conflicts",
    "logger_entries",
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
#: What a declaration names to import on first use: ``"package.module:Class"``.
IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


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
    backends: list[str] = field(default_factory=list)
    loggers: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)
    """Names this plugin registers that another plugin (neither is used) or imgzoo itself (the
    built-in is used) has too."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PluginCommand:
    """An ``imgzoo`` subcommand a plugin registers (see :func:`imgzoo.hookspecs.register_commands`)."""

    name: str
    run: Callable[[argparse.Namespace], int | None]
    help: str = ""
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


@dataclass
class _RegisteredTask:
    declaration: TaskDeclaration
    task_class: type[Task] | None = None
    """The class, once first used."""


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
    backend_claims: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    backends: dict[str, tuple[str, str]] = field(default_factory=dict)
    backend_conflicts: dict[str, list[str]] = field(default_factory=dict)
    logger_claims: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    loggers: dict[str, tuple[str, str]] = field(default_factory=dict)
    logger_conflicts: dict[str, list[str]] = field(default_factory=dict)
    command_claims: dict[str, list[tuple[PluginCommand, str]]] = field(default_factory=dict)
    commands: dict[str, tuple[PluginCommand, str]] = field(default_factory=dict)
    command_conflicts: dict[str, list[str]] = field(default_factory=dict)
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
    """The error for a task, dataset, backend or command name that several plugins register."""
    infos = _state().plugins
    named = " and ".join(_with_distribution(owner, infos) for owner in owners)
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


def backend_entries() -> dict[str, str]:
    """Every usable backend a plugin registers: name -> ``"package.module:Class"``, not imported.
    Names several plugins register, and the built-in names, are left out."""
    return {name: backend for name, (backend, _) in _state().backends.items()}


def backend_plugin(name: str) -> str:
    """The plugin that registers the backend ``name`` (a name of :func:`backend_entries`)."""
    return _state().backends[name][1]


def backend_conflicts() -> dict[str, list[str]]:
    """Backend names registered by more than one plugin -> those plugins (the names are unusable)."""
    return {name: list(owners) for name, owners in _state().backend_conflicts.items()}


def logger_entries() -> dict[str, str]:
    """Every usable training logger a plugin registers: name -> ``"package.module:Class"``, not
    imported. Names several plugins register, and the built-in names, are left out."""
    return {name: logger for name, (logger, _) in _state().loggers.items()}


def logger_conflicts() -> dict[str, list[str]]:
    """Logger names registered by more than one plugin -> those plugins (the names are unusable)."""
    return {name: list(owners) for name, owners in _state().logger_conflicts.items()}


def command_entries() -> dict[str, PluginCommand]:
    """Every usable ``imgzoo`` subcommand a plugin registers, by name (names several plugins
    register, and the built-in names, left out)."""
    return {name: command for name, (command, _) in _state().commands.items()}


def command_plugin(name: str) -> str:
    """The plugin that registers the command ``name`` (a name of :func:`command_entries`)."""
    return _state().commands[name][1]


def command_conflicts() -> dict[str, list[str]]:
    """Command names registered by more than one plugin -> those plugins (the names are unusable)."""
    return {name: list(owners) for name, owners in _state().command_conflicts.items()}


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
    candidates, plain_names = _name_apart(candidates)

    # A misspelled name would otherwise switch off every plugin (or none) without a word.
    known = {info.name for info, _ in candidates} | set(plain_names.values())
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
        loaded.plugins[info.name] = info
        names = {info.name, plain_names.get(info.name, info.name)}  # either one chooses it
        if (allow is not None and not names & allow) or names & deny:
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
    _collect(manager, "register_backends", loaded, _backend_registrar)
    _collect(manager, "register_loggers", loaded, _logger_registrar)
    _collect(manager, "register_commands", loaded, _command_registrar)
    _settle(loaded)
    return loaded


def _name_apart(
    candidates: list[tuple[PluginInfo, Callable[[], object]]],
) -> tuple[list[tuple[PluginInfo, Callable[[], object]]], dict[str, str]]:
    """The candidates with one name each, and each renamed one's plain name.

    One entry point seen twice (an editable install and a wheel of one distribution) is kept
    once. Plugins of one name from different sources (a package on PYTHONPATH whose entry point
    is named ``colorize``, beside imgzoo's own) are each named ``SOURCE:NAME``, the source being
    the distribution: none replaces another, the tasks they both register clash, and the user
    chooses with IMGZOO_PLUGINS or IMGZOO_DISABLE_PLUGINS.
    """
    by_name: dict[str, list[tuple[PluginInfo, Callable[[], object]]]] = {}
    for info, load in candidates:
        same_name = by_name.setdefault(info.name, [])
        if not any(other.distribution == info.distribution for other, _ in same_name):
            same_name.append((info, load))
    kept: list[tuple[PluginInfo, Callable[[], object]]] = []
    plain_names: dict[str, str] = {}
    for name, same_name in by_name.items():
        if len(same_name) > 1:
            qualified = [f"{info.distribution or 'register_plugin'}:{name}" for info, _ in same_name]
            for (info, _), own in zip(same_name, qualified, strict=True):
                others = " and ".join(repr(other) for other in qualified if other != own)
                info.name, plain_names[own] = own, name
                info.clashes.append(
                    f"plugin name {name!r} is also that of {others}, so each is named for its "
                    f"distribution: choose one with {ENV_ALLOW} or {ENV_DENY}"
                )
        kept += same_name
    return kept, plain_names


def _settle(loaded: _Loaded) -> None:
    """Keep only what plugins that are still loaded contributed (a plugin that failed halfway
    through a hook leaves nothing behind), and turn names claimed twice into conflicts."""
    ok = {name for name, info in loaded.plugins.items() if info.status == "loaded"}
    for info in loaded.plugins.values():
        if info.name not in ok:
            info.tasks, info.datasets, info.backends, info.commands = [], [], [], []
            info.loggers = []
    loaded.registry_files = [(path, plugin) for path, plugin in loaded.registry_files if plugin in ok]
    loaded.tasks, loaded.conflicts = _settle_claims("task", loaded.claims, ok, loaded.plugins)
    loaded.datasets, loaded.dataset_conflicts = _settle_claims(
        "dataset", loaded.dataset_claims, ok, loaded.plugins
    )
    _give_way_to_builtins("backend", loaded.backend_claims, hookspecs.BUILTIN_BACKEND_NAMES, ok, loaded)
    loaded.backends, loaded.backend_conflicts = _settle_claims(
        "backend", loaded.backend_claims, ok, loaded.plugins
    )
    _give_way_to_builtins("logger", loaded.logger_claims, hookspecs.BUILTIN_LOGGER_NAMES, ok, loaded)
    loaded.loggers, loaded.logger_conflicts = _settle_claims(
        "logger", loaded.logger_claims, ok, loaded.plugins
    )
    _give_way_to_builtins("command", loaded.command_claims, hookspecs.BUILTIN_COMMAND_NAMES, ok, loaded)
    loaded.commands, loaded.command_conflicts = _settle_claims(
        "command", loaded.command_claims, ok, loaded.plugins
    )


def _give_way_to_builtins(
    kind: str,
    claims_by_name: dict[str, list[tuple[_Claimed, str]]],
    builtins: tuple[str, ...],
    ok: set[str],
    loaded: _Loaded,
) -> None:
    """Drop the claims on imgzoo's own names (the built-in stays what the name means); each
    plugin that made one records the clash, so that ``imgzoo plugins`` shows it."""
    for name in builtins:
        for _, plugin in claims_by_name.pop(name, []):
            if plugin in ok:
                loaded.plugins[plugin].clashes.append(
                    f"{kind} {name!r} is imgzoo's own (built-in), so this plugin's is not used: rename it"
                )


_Claimed = (
    Any  # a _RegisteredTask, a dataset's (factory, description), a backend's import path, a PluginCommand
)


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
    loading_order = {plugin: index for index, plugin in enumerate(infos)}  # not the calling order
    for name, claims in claims_by_name.items():
        claims = sorted(
            ((claimed, plugin) for claimed, plugin in claims if plugin in ok),
            key=lambda claim: loading_order[claim[1]],
        )
        if len(claims) == 1:
            winners[name] = claims[0]
        elif len(claims) > 1:
            owners = [plugin for _, plugin in claims]
            conflicts[name] = owners
            for owner in owners:
                others = " and ".join(_with_distribution(other, infos) for other in owners if other != owner)
                infos[owner].clashes.append(f"{kind} {name!r} is also registered by {others}: unusable")
    return winners, conflicts


def _with_distribution(plugin: str, infos: dict[str, PluginInfo]) -> str:
    """``'name'``, with the distribution that installed it where its name does not say it."""
    info = infos.get(plugin)
    if info is None or info.distribution is None or plugin.startswith(f"{info.distribution}:"):
        return repr(plugin)
    return f"{plugin!r} (distribution {info.distribution})"


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
    current = hookspecs.PLUGIN_API_VERSION
    provided = " and ".join(str(version) for version in supported)
    wanted = " or ".join(str(version) for version in declared)
    raise PluginError(
        f"targets imgzoo plugin API {wanted}, but this imgzoo provides API {provided}: install a "
        f"release of the plugin that supports API {current}, or an imgzoo that provides API {wanted}"
    )


def _collect(
    manager: pluggy.PluginManager, hook_name: str, loaded: _Loaded, make_registrar: Callable
) -> None:
    """Call one hook through pluggy plugin by plugin, in pluggy's order and inside every
    plugin's wrapper of it, so that everything registered is attributed to its plugin and one
    plugin raising does not stop the others. A plugin that raises (or whose wrapper does) is
    failed and unregistered: later hooks no longer call it."""
    caller = getattr(manager.hook, hook_name)
    # pluggy calls the implementations from the last of this list to the first.
    for impl in reversed(caller.get_hookimpls()):
        info = loaded.plugins[impl.plugin_name]
        if _is_wrapper(impl) or info.status != "loaded":
            continue
        while info.status == "loaded":  # again, without a wrapper that broke the call
            live = caller.get_hookimpls()  # less the plugins that failed meanwhile
            wrappers = [other for other in live if _is_wrapper(other)]
            others = [other.plugin for other in live if other is not impl and not _is_wrapper(other)]
            try:
                call_one = manager.subset_hook_caller(hook_name, remove_plugins=others)
                call_one(register=make_registrar(loaded, info))
                break
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # SystemExit too: listing tasks must not end the program
                culprit = _culprit(error, impl, wrappers)
                _fail(loaded.plugins[culprit.plugin_name], error)
                manager.unregister(name=culprit.plugin_name)


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


def _culprit(
    error: BaseException, called: pluggy.HookImpl, wrappers: list[pluggy.HookImpl]
) -> pluggy.HookImpl:
    """The implementation that raised ``error``: of the one ``called`` and the ``wrappers``
    around it, the innermost on the traceback (a wrapper that raises is to blame, not the
    plugin it wraps); ``called`` when none is on it."""
    codes = {getattr(impl.function, "__code__", None): impl for impl in [*wrappers, called]}
    found = called
    for frame, _ in traceback.walk_tb(error.__traceback__):
        found = codes.get(frame.f_code, found)
    return found


def _task_registrar(loaded: _Loaded, info: PluginInfo) -> Callable[[TaskDeclaration], None]:
    from imgzoo.task import TaskConfig, TaskDeclaration, declaration_problems

    def register(declaration: TaskDeclaration) -> None:
        if not isinstance(declaration, TaskDeclaration):
            hint = (
                ": declare the class instead, imgzoo.TaskDeclaration(name=..., description=..., "
                'task_class="package.module:Class", config=...)'
                if isinstance(declaration, type)
                else ""
            )
            raise PluginError(
                f"register_tasks: expected an imgzoo.TaskDeclaration, got {declaration!r}{hint}",
                plugin=info.name,
            )
        name = declaration.name
        if not isinstance(name, str) or not TASK_NAME.match(name):
            raise PluginError(
                f"TaskDeclaration {name!r}: the name must be lowercase letters, digits and dashes",
                plugin=info.name,
            )
        if not isinstance(declaration.task_class, str) or not IMPORT_PATH.match(declaration.task_class):
            raise PluginError(
                f"TaskDeclaration {name!r}: task_class must be 'package.module:Class', "
                f"got {declaration.task_class!r}",
                plugin=info.name,
            )
        config = declaration.config
        if not (isinstance(config, type) and issubclass(config, TaskConfig)):
            raise PluginError(
                f"TaskDeclaration {name!r}: config must subclass imgzoo.TaskConfig, got {config!r}",
                plugin=info.name,
            )
        problems = declaration_problems(declaration)
        if problems:
            raise PluginError(
                f"task {name!r} declares a broken contract: " + "; ".join(problems), plugin=info.name
            )
        _claim(loaded.claims, name, _RegisteredTask(declaration), info, info.tasks)

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
    def register(path: Path | str) -> None:
        path = Path(str(path))
        read_registry_file(path)  # a broken file fails its plugin now, not every later listing
        if (path, info.name) not in loaded.registry_files:
            loaded.registry_files.append((path, info.name))

    return register


def _backend_registrar(loaded: _Loaded, info: PluginInfo) -> Callable[[str, str], None]:
    def register(name: str, backend: str) -> None:
        if not isinstance(name, str) or not TASK_NAME.match(name):
            raise PluginError(
                f"register_backends: a backend name must be lowercase letters, digits and dashes, "
                f"got {name!r}",
                plugin=info.name,
            )
        if not isinstance(backend, str) or not IMPORT_PATH.match(backend):
            raise PluginError(
                f"register_backends: backend {name!r} must be given as 'package.module:Class', "
                f"got {backend!r}",
                plugin=info.name,
            )
        _claim(loaded.backend_claims, name, backend, info, info.backends)

    return register


def _logger_registrar(loaded: _Loaded, info: PluginInfo) -> Callable[[str, str], None]:
    def register(name: str, logger: str) -> None:
        if not isinstance(name, str) or not TASK_NAME.match(name):
            raise PluginError(
                f"register_loggers: a logger name must be lowercase letters, digits and dashes, got {name!r}",
                plugin=info.name,
            )
        if not isinstance(logger, str) or not IMPORT_PATH.match(logger):
            raise PluginError(
                f"register_loggers: logger {name!r} must be given as 'package.module:Class', got {logger!r}",
                plugin=info.name,
            )
        _claim(loaded.logger_claims, name, logger, info, info.loggers)

    return register


def _command_registrar(loaded: _Loaded, info: PluginInfo) -> Callable[..., None]:
    def register(
        name: str,
        run: Callable[[argparse.Namespace], int | None],
        *,
        help: str = "",
        add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        if not isinstance(name, str) or not TASK_NAME.match(name):
            raise PluginError(
                f"register_commands: a command name must be lowercase letters, digits and dashes, "
                f"got {name!r}",
                plugin=info.name,
            )
        if not callable(run) or (add_arguments is not None and not callable(add_arguments)):
            raise PluginError(
                f"register_commands: command {name!r} needs a callable run (and add_arguments, "
                f"if given), got {run!r} and {add_arguments!r}",
                plugin=info.name,
            )
        command = PluginCommand(name=name, run=run, help=str(help), add_arguments=add_arguments)
        _claim(loaded.command_claims, name, command, info, info.commands)

    return register
