"""Plugin discovery and robustness: broken plugins are reported, the rest keeps working."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import imgzoo
from imgzoo import plugins
from imgzoo.data import open_dataset
from toy_tasks import InvertConfig, InvertTask, ToyTasksPlugin, declare


def _info(name: str) -> plugins.PluginInfo:
    return next(info for info in plugins.plugin_infos() if info.name == name)


def test_in_test_plugin_registers_tasks(toy_tasks: None) -> None:
    assert {"invert", "toygan"} <= set(imgzoo.list_tasks())
    info = _info("toy-tasks")
    assert info.status == "loaded" and info.tasks == ["invert", "toygan"] and info.hooks == ["register_tasks"]


def test_unregister_removes_tasks() -> None:
    name = imgzoo.register_plugin(ToyTasksPlugin(), name="temp")
    assert "invert" in imgzoo.list_tasks()
    imgzoo.unregister_plugin(name)
    assert "invert" not in imgzoo.list_tasks()


def test_misspelled_hook_fails_loudly_and_the_rest_works(toy_tasks: None) -> None:
    class Misspelled:
        @imgzoo.hookimpl
        def register_task(self, register):  # type: ignore[no-untyped-def]  # missing "s"
            pass

    with pytest.warns(RuntimeWarning, match="misspelled"):
        imgzoo.register_plugin(Misspelled(), name="misspelled")
        imgzoo.list_tasks()
    info = _info("misspelled")
    assert info.status == "failed" and "register_task" in (info.error or "")
    assert "invert" in imgzoo.list_tasks()


def test_plugin_raising_in_a_hook_is_reported(toy_tasks: None) -> None:
    class Exploding:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    with pytest.warns(RuntimeWarning, match="boom"):
        imgzoo.register_plugin(Exploding(), name="exploding")
        imgzoo.list_tasks()
    assert _info("exploding").status == "failed"
    assert "RuntimeError: boom" in (_info("exploding").error or "")
    assert "invert" in imgzoo.list_tasks()


def test_two_plugins_claiming_a_task_is_an_error_naming_both(toy_tasks: None) -> None:
    class Impostor:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(declare(InvertTask))

    imgzoo.register_plugin(Impostor(), name="impostor")
    assert "invert" not in imgzoo.list_tasks() and "toygan" in imgzoo.list_tasks()
    with pytest.raises(imgzoo.PluginError, match="'toy-tasks' and 'impostor'"):
        imgzoo.load("invert")


@pytest.mark.parametrize(
    ("registered", "message"),
    [
        (42, "expected an imgzoo.TaskDeclaration, got 42"),
        (InvertTask, "declare the class instead, imgzoo.TaskDeclaration("),
        (declare(type("Nameless", (InvertTask,), {"name": "Bad Name"})), "lowercase letters"),
        (
            declare(type("NoConfig", (InvertTask,), {"name": "noconfig", "Config": dict})),
            "config must subclass imgzoo.TaskConfig",
        ),
        (
            imgzoo.TaskDeclaration(name="x", description="", task_class="toy_tasks.InvertTask"),
            "task_class must be 'package.module:Class'",
        ),
    ],
)
def test_malformed_registrations_are_reported(registered: object, message: str) -> None:
    class Sloppy:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(registered)

    with pytest.warns(RuntimeWarning):
        imgzoo.register_plugin(Sloppy(), name="sloppy")
        imgzoo.list_tasks()
    assert message in (_info("sloppy").error or "")


def test_incompatible_plugin_api_is_refused() -> None:
    class FromTheFuture(ToyTasksPlugin):
        IMGZOO_PLUGIN_API = (99,)

    with pytest.warns(RuntimeWarning, match="plugin API"):
        imgzoo.register_plugin(FromTheFuture(), name="future")
        imgzoo.list_tasks()
    assert "provides API 3" in (_info("future").error or "")
    assert "invert" not in imgzoo.list_tasks()


def test_env_vars_select_plugins(toy_tasks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGZOO_DISABLE_PLUGINS", "toy-tasks")
    plugins.reload_plugins()
    assert "invert" not in imgzoo.list_tasks() and _info("toy-tasks").status == "disabled"
    monkeypatch.delenv("IMGZOO_DISABLE_PLUGINS")
    monkeypatch.setenv("IMGZOO_PLUGINS", "toy-tasks")
    plugins.reload_plugins()
    assert "invert" in imgzoo.list_tasks()
    assert all(info.status == "disabled" for info in plugins.plugin_infos() if info.name != "toy-tasks")


def test_plugins_contribute_datasets_and_registry_files(tmp_path: Path) -> None:
    registry_file = tmp_path / "extra.toml"
    registry_file.write_text('[tasks.invert]\ndescription = "from a plugin registry file"\n')

    class Contributor(ToyTasksPlugin):
        @imgzoo.hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            register("nothing", lambda **options: [], description="an empty data source")

        @imgzoo.hookimpl
        def register_registry_files(self, register):  # type: ignore[no-untyped-def]
            register(registry_file)

    imgzoo.register_plugin(Contributor(), name="contributor")
    assert "nothing" in plugins.dataset_factories()
    assert imgzoo.task_info("invert").description == "from a plugin registry file"


def write_distribution(
    site: Path, module_source: str, *, distribution: str = "broken-zoo-plugin", entry_point: str = "broken"
) -> None:
    """An installed-looking distribution (version 1.2.3) whose entry point is a module with
    this source, named like the distribution."""
    module = distribution.replace("-", "_")
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(module_source)
    dist_info = site / f"{module}-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.2.3\n")
    (dist_info / "entry_points.txt").write_text(f"[imgzoo]\n{entry_point} = {module}\n")


@pytest.fixture
def broken_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real installed-looking distribution whose entry point fails to import."""
    write_distribution(tmp_path / "site", "raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    plugins.reload_plugins()
    yield "broken"
    sys.modules.pop("broken_zoo_plugin", None)


def test_entry_point_that_fails_to_import_is_reported(broken_distribution: str, toy_tasks: None) -> None:
    with pytest.warns(RuntimeWarning, match="needs libfoo"):
        tasks = imgzoo.list_tasks()
    assert "invert" in tasks
    info = _info(broken_distribution)
    assert info.status == "failed" and info.distribution == "broken-zoo-plugin" and info.version == "1.2.3"
    assert "ImportError: needs libfoo" in (info.error or "") and "broken-zoo-plugin 1.2.3" in (
        info.error or ""
    )


def test_hookspecs_module_is_documented() -> None:
    from imgzoo import hookspecs

    for name in (
        "register_tasks",
        "register_datasets",
        "register_registry_files",
        "register_backends",
        "register_commands",
    ):
        hook = getattr(hookspecs, name)
        assert hook.__doc__ and len(hook.__doc__.strip()) > 80, name
    assert textwrap.dedent(hookspecs.__doc__ or "").count("entry-points") >= 1


def test_a_plugin_failing_halfway_leaves_nothing_behind(toy_tasks: None) -> None:
    from toy_tasks import InvertTask as Registered

    class Halfway:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(declare(type("Partial", (Registered,), {"name": "partial"})))
            raise RuntimeError("crashed after registering")

    with pytest.warns(RuntimeWarning, match="crashed after registering"):
        imgzoo.register_plugin(Halfway(), name="halfway")
        tasks = imgzoo.list_tasks()
    assert "partial" not in tasks and "invert" in tasks
    assert _info("halfway").status == "failed" and _info("halfway").tasks == []


def test_a_plugin_with_a_broken_registry_file_fails_alone(toy_tasks: None, tmp_path: Path) -> None:
    class Careless:
        @imgzoo.hookimpl
        def register_registry_files(self, register):  # type: ignore[no-untyped-def]
            register(tmp_path / "missing.toml")

    with pytest.warns(RuntimeWarning, match="missing.toml"):
        imgzoo.register_plugin(Careless(), name="careless")
        assert imgzoo.task_info("invert").name == "invert"
    assert _info("careless").status == "failed"


def test_a_plugin_exiting_at_import_leaves_a_library_user_running(tmp_path: Path) -> None:
    write_distribution(tmp_path / "site", "import sys\nsys.exit('plugin says bye')\n")
    script = (
        "import warnings, imgzoo\n"
        "from imgzoo import plugins\n"
        "warnings.simplefilter('ignore')\n"
        "print(','.join(imgzoo.list_tasks()))\n"
        "print(next(i.error for i in plugins.plugin_infos() if i.name == 'broken'))\n"
    )
    paths = [str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}

    completed = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr
    tasks, error = completed.stdout.splitlines()
    assert "colorize" in tasks.split(",")
    assert error.startswith("SystemExit: plugin says bye") and "broken-zoo-plugin 1.2.3" in error


@pytest.mark.parametrize("escape", [SystemExit(3), GeneratorExit(), type("Custom", (BaseException,), {})()])
def test_a_plugin_raising_a_base_exception_in_a_hook_fails_alone(
    toy_tasks: None, escape: BaseException
) -> None:
    class Escaping:
        @imgzoo.hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            raise escape

    with pytest.warns(RuntimeWarning, match=type(escape).__name__):
        imgzoo.register_plugin(Escaping(), name="escaping")
        tasks = imgzoo.list_tasks()
    assert "invert" in tasks and "minifigs" in plugins.dataset_factories()
    assert _info("escaping").status == "failed"
    assert (_info("escaping").error or "").startswith(type(escape).__name__)


def test_keyboard_interrupt_in_a_plugin_still_interrupts() -> None:
    class Interrupted:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        imgzoo.register_plugin(Interrupted(), name="interrupted")
        imgzoo.list_tasks()


def test_two_plugins_registering_a_dataset_name_is_an_error_naming_both() -> None:
    class Copycat:
        @imgzoo.hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            register("minifigs", lambda **options: [], description="not the real minifigs")

    imgzoo.register_plugin(Copycat(), name="copycat")

    assert "minifigs" not in plugins.dataset_factories()
    assert plugins.dataset_conflicts() == {"minifigs": ["minifigs", "copycat"]}
    with pytest.raises(imgzoo.PluginError, match=r"'minifigs' \(distribution imgzoo\) and 'copycat'"):
        open_dataset("minifigs", resolution=32)
    for name in ("minifigs", "copycat"):
        assert _info(name).status == "loaded" and _info(name).datasets == ["minifigs"]
    assert _info("copycat").clashes == [
        "dataset 'minifigs' is also registered by 'minifigs' (distribution imgzoo): unusable"
    ]


IMPOSTOR_MODULE = """
import imgzoo
from imgzoo_colorize import COLORIZE

@imgzoo.hookimpl
def register_tasks(register):
    register(COLORIZE)
"""


@pytest.fixture
def impostor_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A package on the path whose entry point takes the built-in plugin's name, ``colorize``."""
    site = tmp_path / "site"
    write_distribution(site, IMPOSTOR_MODULE, distribution="impostor-zoo", entry_point="colorize")
    monkeypatch.syspath_prepend(str(site))
    plugins.reload_plugins()
    yield
    sys.modules.pop("impostor_zoo", None)


def test_a_package_cannot_replace_a_builtin_plugin_by_taking_its_name(
    impostor_distribution: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, the impostor was listed as `colorize` and `imgzoo run colorize` ran it, silently.
    from imgzoo.cli import main

    assert {"imgzoo:colorize", "impostor-zoo:colorize"} <= {info.name for info in plugins.plugin_infos()}
    assert sorted(plugins.task_conflicts()["colorize"]) == ["imgzoo:colorize", "impostor-zoo:colorize"]
    assert "colorize" not in imgzoo.list_tasks()
    assert main(["info", "colorize"]) == 1
    error = capsys.readouterr().err
    assert (
        error.startswith("imgzoo: error: task 'colorize' is registered by 2 plugins")
        and error.count("\n") == 1
    )
    assert "'imgzoo:colorize'" in error and "'impostor-zoo:colorize'" in error
    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out
    assert "clash: plugin name 'colorize' is also that of 'impostor-zoo:colorize'" in listing
    assert "clash: task 'colorize' is also registered by 'impostor-zoo:colorize': unusable" in listing

    # The allow-list is how the user chooses: by the plugin's full name, or the plain one.
    monkeypatch.setenv("IMGZOO_DISABLE_PLUGINS", "impostor-zoo:colorize")
    plugins.reload_plugins()
    assert plugins.task_plugin("colorize") == "imgzoo:colorize"
    monkeypatch.delenv("IMGZOO_DISABLE_PLUGINS")
    monkeypatch.setenv("IMGZOO_PLUGINS", "impostor-zoo:colorize")
    plugins.reload_plugins()
    assert plugins.task_plugin("colorize") == "impostor-zoo:colorize"
    assert _info("imgzoo:colorize").status == "disabled"


def test_a_task_clash_names_the_distributions() -> None:
    class Colorize:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            from imgzoo_colorize import COLORIZE

            register(COLORIZE)

    imgzoo.register_plugin(Colorize(), name="another-colorize")
    with pytest.raises(
        imgzoo.PluginError, match=r"'colorize' \(distribution imgzoo\) and 'another-colorize'"
    ):
        imgzoo.task_info("colorize")


def test_a_task_clash_is_recorded_on_both_plugins(toy_tasks: None) -> None:
    imgzoo.register_plugin(ToyTasksPlugin(), name="twin")

    assert plugins.task_conflicts() == {"invert": ["toy-tasks", "twin"], "toygan": ["toy-tasks", "twin"]}
    assert _info("toy-tasks").clashes == [
        "task 'invert' is also registered by 'twin': unusable",
        "task 'toygan' is also registered by 'twin': unusable",
    ]


@pytest.mark.parametrize("variable", ["IMGZOO_PLUGINS", "IMGZOO_DISABLE_PLUGINS"])
def test_a_plugin_name_that_matches_no_plugin_is_reported(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from imgzoo.cli import main

    monkeypatch.setenv(variable, "colorise")
    plugins.reload_plugins()
    with pytest.warns(
        RuntimeWarning, match=rf"{variable} names no installed plugin: 'colorise' \(the plugins are"
    ):
        imgzoo.list_tasks()
    assert main(["list"]) == 0
    assert f"imgzoo: warning: {variable} names no installed plugin: 'colorise'" in capsys.readouterr().err


@pytest.fixture
def declared() -> Iterator[Callable[..., None]]:
    """Register a plugin that declares one task with the given TaskDeclaration fields."""
    names: list[str] = []

    def register(**fields: object) -> None:
        declaration = imgzoo.TaskDeclaration(
            **{"name": "invert", "description": "declared negative", "config": InvertConfig, **fields}  # type: ignore[arg-type]
        )

        class Declaring:
            IMGZOO_PLUGIN_API = 3

            @imgzoo.hookimpl
            def register_tasks(self, register):  # type: ignore[no-untyped-def]
                register(declaration)

        names.append(imgzoo.register_plugin(Declaring(), name="declaring"))

    yield register
    for name in names:
        imgzoo.unregister_plugin(name)


def test_a_declared_task_is_listed_without_importing_its_module(declared: Callable[..., None]) -> None:
    declared(task_class="no_such_module_anywhere:InvertTask", scale=2)
    assert "invert" in imgzoo.list_tasks()
    info = imgzoo.task_info("invert")
    assert (info.description, info.scale, info.plugin) == ("declared negative", 2, "declaring")
    assert "gain" in info.config_schema["properties"]
    with pytest.raises(
        imgzoo.PluginError, match=r"class no_such_module_anywhere:InvertTask\) cannot be imported"
    ):
        imgzoo.load("invert", weights=False)


def test_a_declared_task_runs_once_imported(declared: Callable[..., None]) -> None:
    declared(task_class="toy_tasks:InvertTask")
    image = np.full((4, 5, 3), 0.25, dtype=np.float32)
    assert imgzoo.load("invert", weights=False).task.__class__ is InvertTask
    assert imgzoo.run("invert", image, weights=False).shape == (4, 5, 3)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scale": 2}, "scale is 1 in the class but 2 in the declaration"),
        ({"name": "negative"}, "name is 'invert' in the class but 'negative' in the declaration"),
        ({"task_class": "toy_tasks:InvertConfig"}, "not an imgzoo.Task subclass"),
    ],
)
def test_a_class_that_contradicts_its_declaration_is_refused(
    declared: Callable[..., None], fields: dict[str, object], message: str
) -> None:
    declared(**{"task_class": "toy_tasks:InvertTask", **fields})
    task = fields.get("name", "invert")
    with pytest.raises(imgzoo.PluginError, match=message) as raised:
        imgzoo.load(str(task), weights=False)
    assert "plugin 'declaring'" in str(raised.value)


# ── hooks go through pluggy ──────────────────────────────────────────────────────────────────
def test_hooks_are_called_in_pluggys_order_inside_wrappers(toy_tasks: None) -> None:
    calls: list[str] = []

    def dataset_plugin(label: str, **marks: bool) -> object:
        class Plugin:
            @imgzoo.hookimpl(**marks)
            def register_datasets(self, register):  # type: ignore[no-untyped-def]
                calls.append(label)
                register(f"set-{label}", lambda **options: [])

        return Plugin()

    class Wrapper:
        @imgzoo.hookimpl(wrapper=True)
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            calls.append("(")
            yield
            calls.append(")")

    imgzoo.register_plugin(dataset_plugin("last", trylast=True), name="last")
    imgzoo.register_plugin(dataset_plugin("first", tryfirst=True), name="first")
    imgzoo.register_plugin(Wrapper(), name="wrapper")
    imgzoo.register_plugin(dataset_plugin("plain"), name="plain")
    plugins.dataset_factories()

    # minifigs, a built-in, implements the hook too; each plugin's call is wrapped.
    assert [call for call in calls if call not in "()"] == ["first", "plain", "last"]
    assert calls.count("(") == calls.count(")") == 4 and calls[:3] == ["(", "first", ")"]
    assert [_info(name).datasets for name in ("first", "plain", "last")] == [
        ["set-first"],
        ["set-plain"],
        ["set-last"],
    ]
    assert _info("wrapper").status == "loaded" and _info("wrapper").datasets == []


def test_a_wrapper_that_raises_fails_alone(toy_tasks: None) -> None:
    class Breaking:
        @imgzoo.hookimpl(hookwrapper=True)
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            raise ValueError("broken wrapper")
            yield  # a generator, as pluggy wants a wrapper

    with pytest.warns(RuntimeWarning, match="broken wrapper"):
        imgzoo.register_plugin(Breaking(), name="breaking")
        tasks = imgzoo.list_tasks()
    assert {"invert", "toygan", "colorize", "edges2photo"} <= set(tasks)
    assert _info("breaking").status == "failed" and "ValueError: broken wrapper" in (
        _info("breaking").error or ""
    )
    assert _info("toy-tasks").status == "loaded" and _info("toy-tasks").tasks == ["invert", "toygan"]


# ── backends ─────────────────────────────────────────────────────────────────────────────────
def _backend_plugin(*registrations: tuple[object, object]) -> object:
    class Backends:
        @imgzoo.hookimpl
        def register_backends(self, register):  # type: ignore[no-untyped-def]
            for name, backend in registrations:
                register(name, backend)

    return Backends()


def test_plugin_backends_are_collected_without_importing_them() -> None:
    imgzoo.register_plugin(_backend_plugin(("tensorrt", "no_such_runtime.backend:TensorRT")), name="fast")
    assert plugins.backend_entries() == {"tensorrt": "no_such_runtime.backend:TensorRT"}
    assert plugins.backend_plugin("tensorrt") == "fast"
    assert _info("fast").backends == ["tensorrt"] and _info("fast").hooks == ["register_backends"]
    assert "no_such_runtime" not in sys.modules


def test_a_backend_name_two_plugins_register_is_an_error_naming_both() -> None:
    imgzoo.register_plugin(_backend_plugin(("openvino", "a.backend:OpenVino")), name="one")
    imgzoo.register_plugin(_backend_plugin(("openvino", "b.backend:OpenVino")), name="two")
    assert "openvino" not in plugins.backend_entries()
    assert plugins.backend_conflicts() == {"openvino": ["one", "two"]}
    assert _info("one").clashes == ["backend 'openvino' is also registered by 'two': unusable"]
    error = plugins.clash_error("backend", "openvino", plugins.backend_conflicts()["openvino"])
    assert "'one' and 'two'" in str(error)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_a_plugin_backend_cannot_take_a_builtin_name(name: str) -> None:
    imgzoo.register_plugin(
        _backend_plugin((name, "mine.backend:Mine"), ("other", "mine.backend:Other")), name="mine"
    )
    assert plugins.backend_entries() == {"other": "mine.backend:Other"}
    assert _info("mine").status == "loaded"
    assert _info("mine").clashes == [
        f"backend {name!r} is imgzoo's own (built-in), so this plugin's is not used: rename it"
    ]


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        (("Fast Backend", "mine:Fast"), "lowercase letters"),
        (("fast", "mine.Fast"), "must be given as 'package.module:Class'"),
        (("fast", object), "must be given as 'package.module:Class'"),
    ],
)
def test_a_malformed_backend_registration_fails_its_plugin(
    registration: tuple[object, object], message: str
) -> None:
    with pytest.warns(RuntimeWarning, match="register_backends"):
        imgzoo.register_plugin(_backend_plugin(registration), name="sloppy")
        plugins.backend_entries()
    assert _info("sloppy").status == "failed" and message in (_info("sloppy").error or "")


# ── commands ─────────────────────────────────────────────────────────────────────────────────
class _Greeter:
    """A plugin adding ``imgzoo greet NAME [--shout]``."""

    @imgzoo.hookimpl
    def register_commands(self, register):  # type: ignore[no-untyped-def]
        def add_arguments(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("who")
            parser.add_argument("--shout", action="store_true")

        def run(args: argparse.Namespace) -> int:
            if args.who == "nobody":
                raise imgzoo.ArgumentError("greet: nobody to greet", argument="who")
            greeting = f"hello {args.who}"
            print(greeting.upper() if args.shout else greeting)
            return 3 if args.who == "three" else 0

        register("greet", run, help="greet someone", add_arguments=add_arguments)


def test_a_plugin_adds_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    from imgzoo.cli import main

    imgzoo.register_plugin(_Greeter(), name="greeter")
    assert main(["greet", "world", "--shout"]) == 0
    assert capsys.readouterr().out == "HELLO WORLD\n"
    assert main(["greet", "three"]) == 3
    assert main(["greet", "nobody"]) == 1
    assert capsys.readouterr().err == "imgzoo: error: greet: nobody to greet\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "greet someone" in capsys.readouterr().out
    assert main(["plugins"]) == 0
    assert (
        "greeter (_Greeter): loaded\n  hooks: register_commands\n  commands: greet\n"
        in capsys.readouterr().out
    )


def test_a_command_name_two_plugins_register_fails_naming_both(capsys: pytest.CaptureFixture[str]) -> None:
    from imgzoo.cli import main

    imgzoo.register_plugin(_Greeter(), name="greeter")
    imgzoo.register_plugin(_Greeter(), name="copycat")
    assert plugins.command_conflicts() == {"greet": ["greeter", "copycat"]}
    assert main(["greet", "world", "--shout"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(
        "imgzoo: error: command 'greet' is registered by 2 plugins, 'greeter' and 'copycat'"
    )
    assert main(["list"]) == 0  # the rest of the command line works


def test_a_plugin_command_cannot_take_a_builtin_name(capsys: pytest.CaptureFixture[str]) -> None:
    from imgzoo import hookspecs
    from imgzoo.cli import _build_parser, main

    class Impostor:
        @imgzoo.hookimpl
        def register_commands(self, register):  # type: ignore[no-untyped-def]
            register("list", lambda args: print("not the real list"))

    imgzoo.register_plugin(Impostor(), name="impostor")
    assert main(["list"]) == 0 and "not the real list" not in capsys.readouterr().out
    assert _info("impostor").clashes == [
        "command 'list' is imgzoo's own (built-in), so this plugin's is not used: rename it"
    ]
    commands = next(
        action for action in _build_parser()._actions if action.dest == argparse.SUPPRESS and action.choices
    )
    assert set(commands.choices) == set(hookspecs.BUILTIN_COMMAND_NAMES)


def test_a_command_whose_arguments_cannot_be_set_up_fails_alone(capsys: pytest.CaptureFixture[str]) -> None:
    from imgzoo.cli import main

    class Clumsy:
        @imgzoo.hookimpl
        def register_commands(self, register):  # type: ignore[no-untyped-def]
            def add_arguments(parser: argparse.ArgumentParser) -> None:
                parser.add_argument("--debug")  # every command has it already

            register("clumsy", lambda args: 0, add_arguments=add_arguments)

    imgzoo.register_plugin(Clumsy(), name="clumsy")
    assert main(["clumsy", "--anything", "x"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(
        "imgzoo: error: command 'clumsy' of plugin 'clumsy' cannot be set up: its add_arguments raised"
    )
    assert main(["list"]) == 0
