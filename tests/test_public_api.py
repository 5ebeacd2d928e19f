"""The public surface: what ``import imgzoo`` offers, and that it stays light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import imgzoo

DOCUMENTED = {
    "run",
    "load",
    "Pipeline",
    "list_tasks",
    "list_datasets",
    "luma",
    "prepack_convolutions",
    "task_info",
    "add_registry",
    "train",
    "evaluate",
    "hookimpl",
    "register_plugin",
    "unregister_plugin",
    "Task",
    "TaskConfig",
    "TaskDeclaration",
    "StepContext",
    "Model",
    "ZooError",
    "UnknownTaskError",
    "InvalidImageError",
    "WeightsError",
    "ConfigError",
    "PluginError",
    "DataError",
    "InputError",
    "TaskBugError",
    "InputSpec",
    "Sample",
    "metrics",
    "domain",
    "TilingError",
    "Tiling",
    "export",
    "ExportReport",
    "ExportError",
    "BackendError",
    "ArgumentError",
    "DeviceError",
    "TaskContractError",
    "ResultError",
    "MissingExtraError",
    "MemoryBudgetError",
    "RequestError",
    "OutputError",
    "OutputExistsError",
    "CheckpointError",
    "RegistryError",
    "__version__",
}


def test_all_is_what_the_docs_say() -> None:
    assert set(imgzoo.__all__) == DOCUMENTED
    for name in imgzoo.__all__:
        assert getattr(imgzoo, name) is not None, name


def test_errors_share_one_base() -> None:
    errors = sorted(name for name in DOCUMENTED if name.endswith("Error"))
    assert len(errors) == 23
    for name in errors:
        assert issubclass(getattr(imgzoo, name), imgzoo.ZooError), name


def test_errors_module_draws_every_error_class() -> None:
    """The hierarchy drawn in imgzoo.errors' docstring lists every class it defines."""
    from imgzoo import errors

    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert f" {name} " in errors.__doc__, name


def _run_python(code: str) -> str:
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_import_and_listing_do_not_import_torch() -> None:
    out = _run_python(
        "import sys, imgzoo\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "tasks = imgzoo.list_tasks()\n"
        "[imgzoo.task_info(t) for t in tasks]\n"
        "assert 'torch' not in sys.modules, 'listing'\n"
        "from imgzoo.cli import main\n"
        "main(['list']); main(['plugins'])\n"
        "assert 'torch' not in sys.modules, 'cli'\n"
        "print('ok', len(tasks))\n"
    )
    assert "ok" in out


def test_lazy_names_resolve() -> None:
    import torch

    assert issubclass(imgzoo.Model, torch.nn.Module)
    assert callable(imgzoo.run) and callable(imgzoo.load) and callable(imgzoo.train)


REPO = Path(__file__).resolve().parents[1]


def _documented_plugin_modules() -> set[str]:
    """The modules docs/plugins.md lists under "The public API" (its ``- `module`:`` bullets)."""
    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = guide.split("## The public API", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^- `(imgzoo[\w.]*)`:", section, flags=re.MULTILINE))


def _imgzoo_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of imgzoo or a submodule of it in a Python file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, module) for line, module in found if module.split(".")[0] == "imgzoo"]


def test_plugins_import_only_the_documented_public_modules() -> None:
    documented = _documented_plugin_modules()
    assert documented == {"imgzoo", "imgzoo.metrics", "imgzoo.domain"}
    sources = [*(REPO / "plugins").rglob("*.py"), *REPO.glob("examples/imgzoo-*/src/**/*.py")]
    assert len(sources) > 10
    private = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sources
        for line, module in _imgzoo_imports(path)
        if module not in documented
    ]
    assert private == []


def test_core_names_no_plugin() -> None:
    """The core reaches plugins only through the registry: it imports no plugin package, and
    the data layer does not reach into the plugin machinery."""
    plugin_packages = {path.name for path in (REPO / "plugins").iterdir() if path.is_dir()}
    for path in (REPO / "core" / "imgzoo").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {module.split(".")[0] for module in imported} & plugin_packages, path
        if path.parent.name == "data":
            assert "imgzoo.plugins" not in imported, path


def test_list_datasets_names_what_plugins_register() -> None:
    class Swatches:
        @imgzoo.hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            register("swatches-test", lambda resolution, seed=0: [], description="test data")

    name = imgzoo.register_plugin(Swatches(), name="swatches-test")
    try:
        assert "swatches-test" in imgzoo.list_datasets() and "minifigs" in imgzoo.list_datasets()
        assert imgzoo.list_datasets("swatch*") == ["swatches-test"]
    finally:
        imgzoo.unregister_plugin(name)
