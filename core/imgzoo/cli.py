"""The ``imgzoo`` command line.

    imgzoo list [PATTERN] [--json]
    imgzoo info TASK [--schema] [--json]
    imgzoo run TASK INPUT... [-o OUT] [--weights W] [--set key=value]...
    imgzoo train TASK --data SPEC --out DIR ...        imgzoo eval TASK --data SPEC ...
    imgzoo plugins [--json]
    imgzoo new-plugin NAME [--dir D]

Errors print one line (``imgzoo: error: ...``) and exit with status 1; ``--debug`` shows the
traceback instead. Listing commands never import torch.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgzoo import __version__, hookspecs, plugins, registry
from imgzoo.errors import ZooError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.simplefilter("ignore", RuntimeWarning)  # plugin failures are printed below instead
            _report_plugin_failures(args)
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("imgzoo: interrupted", file=sys.stderr)
        return 130
    except (ZooError, OSError) as error:
        if args.debug:
            raise
        print(f"imgzoo: error: {error}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgzoo", description="A plugin-based model zoo for image-to-image models."
    )
    parser.add_argument("--version", action="version", version=f"imgzoo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.set_defaults(command=name, handler=handler)
        return sub

    sub = command("list", _cmd_list, "list the installed tasks")
    sub.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'col*'")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    sub = command("info", _cmd_info, "show a task's description, weights and config")
    sub.add_argument("task")
    sub.add_argument("--schema", action="store_true", help="print the config's JSON Schema")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    sub = command("run", _cmd_run, "run a task on images (files, folders or globs)")
    sub.add_argument("task")
    sub.add_argument("inputs", nargs="+", metavar="INPUT")
    sub.add_argument("-o", "--output", help="output file (one input) or directory (default: outputs/TASK)")
    sub.add_argument("--weights", help="registered weights name, a .safetensors path or a URL")
    sub.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    sub.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    sub.add_argument("--config", help="TOML or JSON file of config values")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set a config field")
    sub.add_argument("--batch-size", type=int, default=8)

    sub = command("plugins", _cmd_plugins, "list plugins: distribution, version, hooks, tasks, status")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    sub = command("new-plugin", _cmd_new_plugin, "write a new plugin package: a task, its model and tests")
    sub.add_argument("name", help="the task's name: lowercase letters, digits and dashes, e.g. 'sharpen'")
    sub.add_argument(
        "--dir", default=".", metavar="D", help="where to create the imgzoo-NAME folder (default: here)"
    )

    from imgzoo.training import cli as training_cli

    training_cli.add_train_arguments(
        command("train", training_cli.run_train, "train a task on a folder or dataset")
    )
    training_cli.add_eval_arguments(
        command("eval", training_cli.run_eval, "evaluate weights on a folder or dataset")
    )
    return parser


def _report_plugin_failures(args: argparse.Namespace) -> None:
    if args.command == "plugins":
        return
    for info in plugins.load_errors():
        print(f"imgzoo: warning: plugin {info.name!r} failed to load: {info.error}", file=sys.stderr)


# ── commands ──────────────────────────────────────────────────────────────────────────────
def _cmd_list(args: argparse.Namespace) -> int:
    names = registry.list_tasks(args.pattern)
    infos = [registry.task_info(name) for name in names]
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return 0
    if not infos:
        print(f"no tasks match {args.pattern!r}" if args.pattern != "*" else "no tasks installed")
        return 0
    width = max(len(info.name) for info in infos)
    for info in infos:
        weights = info.default_weights or "(no weights)"
        print(f"{info.name:<{width}}  {info.description}  [default weights: {weights}]")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    info = registry.task_info(args.task)
    if args.schema:
        print(json.dumps(info.config_schema, indent=2))
        return 0
    if args.json:
        print(json.dumps({**info.as_dict(), "config_schema": info.config_schema}, indent=2))
        return 0
    print(f"{info.name}: {info.description}")
    print(f"  plugin: {info.plugin}")
    print("  weights:")
    if not info.weights:
        print("    (none registered: train some with `imgzoo train`)")
    for name, entry in info.weights.items():
        marker = " (default)" if name == info.default_weights else ""
        print(f"    {name}{marker}: {entry.source}")
        print(f"      sha256 {entry.sha256}  license {entry.license or '?'}")
        if entry.metrics:
            print("      metrics " + ", ".join(f"{k}={v}" for k, v in entry.metrics.items()))
    print("  config:")
    for field, spec in info.config_schema.get("properties", {}).items():
        default = spec.get("default", "(required)")
        print(f"    {field} = {default!r}: {spec.get('description', '')}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    infos = plugins.plugin_infos()
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return 0
    print(f"imgzoo {__version__} provides plugin API {hookspecs.PLUGIN_API_VERSION}")
    if not infos:
        print("no plugins installed")
    for info in infos:
        source = f"{info.distribution} {info.version}" if info.distribution else info.module
        print(f"{info.name} ({source}): {info.status}")
        if info.plugin_api is not None:
            print(f"  plugin API: {', '.join(map(str, info.plugin_api))}")
        if info.error:
            print(f"  error: {info.error}")
        if info.hooks:
            print(f"  hooks: {', '.join(info.hooks)}")
        if info.tasks:
            print(f"  tasks: {', '.join(info.tasks)}")
        if info.datasets:
            print(f"  datasets: {', '.join(info.datasets)}")
    return 0


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    from imgzoo.scaffold import new_plugin

    folder = new_plugin(args.name, args.dir)
    if args.name in registry.list_tasks():
        owner = plugins.task_plugin(args.name)
        print(
            f"imgzoo: warning: plugin {owner!r} already provides a task {args.name!r}; "
            "installing both makes the name ambiguous (rename the task, or disable one plugin)",
            file=sys.stderr,
        )
    print(f"created {folder} (task {args.name!r}); next:")
    print(f"  cd {folder}")
    print("  pip install -e .      # registers the task through its entry point")
    print("  python -m pytest      # imgzoo's task contract and the task's own tests")
    print(f"  imgzoo run {args.name} IMAGE -o result.png")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from imgzoo import config as config_module
    from imgzoo import images
    from imgzoo.pipeline import load

    paths = expand_inputs(args.inputs)
    overrides = config_module.parse_assignments(args.set, task=args.task)
    pipeline = load(
        args.task, args.weights, device=args.device, precision=args.precision, config=args.config, **overrides
    )
    output = Path(args.output) if args.output else Path("outputs") / args.task
    single_file = len(paths) == 1 and output.suffix.lower() in IMAGE_SUFFIXES
    if not single_file:
        output.mkdir(parents=True, exist_ok=True)
    progress = _progress(paths, desc=args.task)
    written: list[Path] = []
    for path in progress:
        image = images.load_image(path)
        result = pipeline.process([image], batch_size=args.batch_size)[0]
        target = output if single_file else output / f"{path.stem}.png"
        images.save_image(target, result, image.alpha)
        written.append(target)
    where = written[0] if single_file else output
    print(f"wrote {len(written)} image{'s' if len(written) != 1 else ''} to {where}")
    return 0


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files as given, folders searched recursively for images, globs expanded (for shells,
    such as Windows', that leave them alone). A pattern that matches nothing is an error."""
    from imgzoo.errors import InvalidImageError

    paths: list[Path] = []
    for item in inputs:
        matches = (
            [Path(p) for p in sorted(glob.glob(item, recursive=True))]
            if glob.has_magic(item)
            else [Path(item)]
        )
        if not matches:
            raise InvalidImageError(f"no files match {item!r}", source=item)
        for path in matches:
            if path.is_dir():
                found = sorted(
                    p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                )
                if not found:
                    raise InvalidImageError(f"no images in folder {path}", source=path)
                paths.extend(found)
            else:
                paths.append(path)
    return paths


def _progress(items: list[Path], *, desc: str) -> Any:
    if len(items) < 4:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
