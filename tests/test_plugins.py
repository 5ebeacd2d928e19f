"""Plugin discovery and robustness: broken plugins are reported, the rest keeps working."""

from __future__ import annotations

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
from toy_tasks import InvertConfig, InvertTask, ToyTasksPlugin


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
            register(InvertTask)

    imgzoo.register_plugin(Impostor(), name="impostor")
    assert "invert" not in imgzoo.list_tasks() and "toygan" in imgzoo.list_tasks()
    with pytest.raises(imgzoo.PluginError, match="'toy-tasks' and 'impostor'"):
        imgzoo.load("invert")


@pytest.mark.parametrize(
    ("registered", "message"),
    [
        (42, "expected a Task subclass"),
        (type("Nameless", (InvertTask,), {"name": "Bad Name"}), "lowercase letters"),
        (
            type("NoConfig", (InvertTask,), {"name": "noconfig", "Config": dict}),
            "must subclass imgzoo.TaskConfig",
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
    assert "provides API 1" in (_info("future").error or "")
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


def write_distribution(site: Path, module_source: str) -> None:
    """An installed-looking distribution, broken-zoo-plugin 1.2.3, whose entry point ``broken``
    is a module with this source."""
    (site / "broken_zoo_plugin").mkdir(parents=True)
    (site / "broken_zoo_plugin" / "__init__.py").write_text(module_source)
    dist_info = site / "broken_zoo_plugin-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-zoo-plugin\nVersion: 1.2.3\n")
    (dist_info / "entry_points.txt").write_text("[imgzoo]\nbroken = broken_zoo_plugin\n")


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

    for name in ("register_tasks", "register_datasets", "register_registry_files"):
        hook = getattr(hookspecs, name)
        assert hook.__doc__ and len(hook.__doc__.strip()) > 80, name
    assert textwrap.dedent(hookspecs.__doc__ or "").count("entry-points") >= 1


def test_a_plugin_failing_halfway_leaves_nothing_behind(toy_tasks: None) -> None:
    from toy_tasks import InvertTask as Registered

    class Halfway:
        @imgzoo.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(type("Partial", (Registered,), {"name": "partial"}))
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
    with pytest.raises(imgzoo.PluginError, match="'minifigs' and 'copycat'"):
        open_dataset("minifigs", resolution=32)
    for name in ("minifigs", "copycat"):
        assert _info(name).status == "loaded" and _info(name).datasets == ["minifigs"]
    assert _info("copycat").clashes == ["dataset 'minifigs' is also registered by 'minifigs': unusable"]


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
