"""The public surface: what ``import imgzoo`` offers, and that it stays light."""

from __future__ import annotations

import subprocess
import sys

import imgzoo

DOCUMENTED = {
    "run",
    "load",
    "Pipeline",
    "list_tasks",
    "task_info",
    "add_registry",
    "train",
    "evaluate",
    "hookimpl",
    "register_plugin",
    "unregister_plugin",
    "Task",
    "TaskConfig",
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
    assert len(errors) == 20
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
