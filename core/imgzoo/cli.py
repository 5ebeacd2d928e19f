"""The ``imgzoo`` command line.

    imgzoo list [PATTERN] [--json]
    imgzoo info TASK [--schema] [--json]
    imgzoo run TASK INPUT... [--input NAME=PATH]... [-o OUT] [--overwrite] [--weights W] [--set key=value]...
               [--backend torch|onnxruntime] [--engine local|ray [--concurrency N]]
    imgzoo export TASK [--weights W] --format onnx|torchscript [--standalone] -o FILE [--set key=value]...
    imgzoo publish RUN_DIR_OR_WEIGHTS -o FOLDER [--repo OWNER/REPO] [--push OWNER/REPO] [--license ID]
    imgzoo train TASK --data SPEC --out DIR ...        imgzoo eval TASK --data SPEC ...
    imgzoo serve [TASK...] [--host H] [--port P] [--max-batch N] [--max-wait-ms M] [--queue N] ...
                 [--engine local|ray [--replicas N]]
    imgzoo plugins [--json]
    imgzoo new-plugin NAME [--dir D]
    imgzoo COMMAND ...                                  a command a plugin adds (register_commands)

Errors print one line (``imgzoo: error: ...``) and exit with status 1; ``--debug`` shows the
traceback instead. Listing commands never import torch.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import glob
import json
import math
import os
import stat
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgzoo import __version__, catalogue, hookspecs, plugins
from imgzoo.backends import backend_class
from imgzoo.errors import ArgumentError, ConfigError, PluginError, ZooError
from imgzoo.formats import MAP_SUFFIX, RESULT_SUFFIX, WRITABLE_SUFFIXES
from imgzoo.hardware import INFERENCE_PRECISIONS, is_out_of_memory
from imgzoo.serve.settings import ServeSettings

ENGINES = ("local", "ray")
"""What ``imgzoo run`` and ``imgzoo serve`` run on (``--engine``)."""

if TYPE_CHECKING:
    from imgzoo.pipeline import Pipeline
    from imgzoo.task import Task, TaskDeclaration


def main(argv: Sequence[str] | None = None) -> int:
    with warnings.catch_warnings():
        # Building the parser loads the plugins (they may add commands); failures are told below.
        warnings.simplefilter("ignore", RuntimeWarning)
        parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_anything", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.simplefilter("ignore", RuntimeWarning)  # plugin failures are printed below instead
                warnings.showwarning = _show_warning
            _report_plugin_failures(args)
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("imgzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`imgzoo list | head`): not an error. Point stdout at devnull so
        # that Python's own flush at exit does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ZooError, OSError) as error:
        if args.debug:
            raise
        print(f"imgzoo: error: {error}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as error:
        if args.debug or not is_out_of_memory(error):
            raise
        print(
            "imgzoo: error: out of memory: use smaller images or a smaller --batch-size, or lower "
            "IMGZOO_MAX_PIXELS to refuse large images before they are decoded",
            file=sys.stderr,
        )
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgzoo", description="A plugin-based model zoo for image-to-image models."
    )
    parser.add_argument("--version", action="version", version=f"imgzoo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_CommandParser)

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
    sub.add_argument(
        "--weights",
        help="registered weights name, a .safetensors path, a URL or hf://OWNER/REPO[@REVISION]/FILE",
    )
    _add_place_arguments(sub)
    sub.add_argument("--config", help="TOML or JSON file of config values")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set a config field")
    sub.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a named input of the task (mask=mask.png): a file for one INPUT, else a folder "
        "holding one file per INPUT with the same name",
    )
    sub.add_argument("--batch-size", type=int, default=8)
    sub.add_argument(
        "--overwrite", action="store_true", help="replace existing output files (never an input)"
    )
    sub.add_argument(
        "--backend",
        default="torch",
        help="what runs the model: torch (default), onnxruntime (fp32 on the CPU; exported once and "
        'cached; pip install "imgzoo[onnx]"), or a backend a plugin adds',
    )
    sub.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local (default): this process; ray: Ray Data, on a local cluster or the one RAY_ADDRESS names "
        '(pip install "imgzoo[ray]")',
    )
    sub.add_argument(
        "--concurrency",
        type=int,
        help="--engine ray: the workers running the model (default: one per GPU, else one per CPU)",
    )

    sub = command(
        "export", _cmd_export, "export a task's model to ONNX or TorchScript, checked against PyTorch"
    )
    sub.add_argument("task")
    sub.add_argument("-o", "--output", required=True, help="the file to write (e.g. colorize.onnx)")
    sub.add_argument("--format", default="onnx", choices=["onnx", "torchscript"], help="default: onnx")
    sub.add_argument(
        "--weights",
        help="registered weights name, a .safetensors path, a URL or hf://OWNER/REPO[@REVISION]/FILE",
    )
    sub.add_argument("--config", help="TOML or JSON file of config values")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set a config field")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    sub.add_argument(
        "--standalone",
        action="store_true",
        help="the whole of run() in one ONNX graph (uint8 picture in, uint8 result out, pre- and "
        "postprocessing included), which plain onnxruntime runs without imgzoo",
    )

    sub = command("serve", _cmd_serve, "serve tasks over HTTP: an API with dynamic batching, and a web page")
    sub.add_argument(
        "tasks", nargs="*", metavar="TASK", help="tasks to serve (default: every installed task)"
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    sub.add_argument("--port", type=_port, default=8000, help="port to listen on, 0 to 65535 (default: 8000)")
    sub.add_argument(
        "--allowed-hosts",
        type=_host_list,
        default=(),
        metavar="HOST[,HOST...]",
        help="Host header names to answer besides localhost and the --host address; *.example.org "
        "matches its subdomains, * any; others get 400 (a guard against DNS rebinding)",
    )
    sub.add_argument(
        "--max-batch", type=int, default=8, help="most requests run as one batch (1 turns batching off)"
    )
    sub.add_argument(
        "--max-wait-ms",
        type=_finite_float,
        default=5.0,
        help="how long a request may wait for others of its size to join its batch",
    )
    sub.add_argument("--queue", type=int, default=64, help="most requests queued at once; more get 503")
    sub.add_argument(
        "--timeout", type=_finite_float, default=30.0, help="seconds a request may take; then 504"
    )
    sub.add_argument(
        "--body-timeout",
        type=_finite_float,
        default=ServeSettings.body_timeout,
        help="seconds a request body may take to arrive, plus 1 per MiB it declares; slower get 408 "
        "(default: 30)",
    )
    sub.add_argument(
        "--max-request-mb",
        type=_finite_float,
        default=32.0,
        help="largest request body in MiB; larger get 413",
    )
    sub.add_argument(
        "--max-memory-gb",
        type=_finite_float,
        default=None,
        help="memory in GiB the requests in flight may take together, estimated before decoding; a "
        "request that cannot fit gets 413, a batch that would exceed it is split (default: half of "
        "the memory available at start)",
    )
    sub.add_argument(
        "--max-pixels",
        type=int,
        default=ServeSettings.max_pixels,
        help="largest image in pixels (height x width, read from its header before decoding); larger get "
        "413 (default: 4096x4096)",
    )
    sub.add_argument(
        "--max-models",
        type=int,
        default=ServeSettings.max_models,
        help="most models loaded at once, one per task and set of options; the least recently used idle "
        "one makes room (default: 8)",
    )
    _add_place_arguments(sub)
    sub.add_argument(
        "--backend",
        default="torch",
        help="what runs the models, as in imgzoo run: torch (default), onnxruntime (fp32 on the CPU), "
        "or a backend a plugin adds",
    )
    sub.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="TASK=WEIGHTS",
        help="the weights to serve for TASK: a registered name, a .safetensors path, a URL or an "
        "hf://OWNER/REPO[@REVISION]/FILE address "
        "(repeatable; default: each task's default weights)",
    )
    sub.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local (default): one uvicorn process; ray: a Ray Serve deployment of the same application "
        '(pip install "imgzoo[ray]")',
    )
    sub.add_argument(
        "--replicas", type=int, default=1, help="--engine ray: replicas of the server, each batching its own"
    )

    sub = command(
        "publish",
        _cmd_publish,
        "write a training run (or a weights file) as a Hugging Face Hub folder: weights, model card, "
        "registry entry",
    )
    sub.add_argument(
        "source", metavar="RUN_DIR_OR_WEIGHTS", help="a training run's --out folder, or a weights file"
    )
    sub.add_argument("-o", "--output", required=True, metavar="FOLDER", help="the folder to write")
    sub.add_argument(
        "--repo",
        metavar="OWNER/REPO",
        help="the Hub repository the weights will live in, for their hf:// address (default: a placeholder)",
    )
    sub.add_argument(
        "--push", metavar="OWNER/REPO", help="also upload the folder to this Hub repository (needs a token)"
    )
    sub.add_argument(
        "--license",
        metavar="ID",
        help="the weights' licence, an SPDX id such as mit or apache-2.0 (default: the run's registry "
        "entry's)",
    )
    sub.add_argument("--overwrite", action="store_true", help="replace files of the same names in FOLDER")

    sub = command("plugins", _cmd_plugins, "list plugins: distribution, version, hooks, tasks, status")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    sub = command("new-plugin", _cmd_new_plugin, "write a new plugin package: a task, its model and tests")
    sub.add_argument("name", help="the task's name: lowercase letters, digits and dashes, e.g. 'sharpen'")
    sub.add_argument(
        "--dir", default=".", metavar="D", help="where to create the imgzoo-NAME folder (default: here)"
    )

    sub = command("data", _cmd_data, "prepare training data: pack a folder into WebDataset shards")
    actions = sub.add_subparsers(title="actions", metavar="ACTION", dest="action", required=True)
    pack = actions.add_parser(
        "pack",
        help="write a folder of images (or a paired A/ B/ folder) as WebDataset tar shards",
        description="write a folder of images (or a paired A/ B/ folder) as WebDataset tar shards, "
        "indexed for training with --data webdataset:PATTERN",
    )
    pack.add_argument("folder", help="the folder of pictures")
    pack.add_argument("-o", "--output", required=True, metavar="DIR", help="where the shards go")
    pack.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    pack.add_argument("--prefix", default="train", help="shard names: PREFIX-000000.tar... (default train)")
    pack.add_argument(
        "--scale", type=int, default=1, help="how many times larger a paired folder's targets are (default 1)"
    )
    pack.add_argument("--overwrite", action="store_true", help="replace shards of the same names")

    from imgzoo.training import cli as training_cli

    training_cli.add_train_arguments(
        command("train", training_cli.run_train, "train a task on a folder or dataset")
    )
    training_cli.add_eval_arguments(
        command("eval", training_cli.run_eval, "evaluate weights on a folder or dataset")
    )
    _add_plugin_commands(commands)
    return parser


def _add_plugin_commands(commands: Any) -> None:
    """The subcommands plugins register (:func:`imgzoo.hookspecs.register_commands`). One that
    cannot be used (its name registered by several plugins, its ``add_arguments`` broken) is
    still a command: it fails with the reason, and takes any arguments so that it gets to."""
    broken: dict[str, PluginError] = {
        name: plugins.clash_error("command", name, owners)
        for name, owners in plugins.command_conflicts().items()
    }
    for name, command in sorted(plugins.command_entries().items()):
        arguments = _command_parent()
        try:
            if command.add_arguments is not None:
                command.add_arguments(arguments)
        except Exception as error:
            plugin = plugins.command_plugin(name)
            broken[name] = PluginError(
                f"command {name!r} of plugin {plugin!r} cannot be set up: its add_arguments raised "
                f"{type(error).__name__}: {error}; fix or update the plugin, or disable it with "
                f"{plugins.ENV_DENY}={plugin}",
                plugin=plugin,
            )
            continue
        sub = commands.add_parser(name, help=command.help, description=command.help, parents=[arguments])
        sub.set_defaults(command=name, handler=command.run)
    for name, problem in sorted(broken.items()):
        sub = commands.add_parser(name, help=f"(unusable: {problem})", parents=[_command_parent()])
        sub.set_defaults(command=name, handler=functools.partial(_fail_with, problem), takes_anything=True)


def _command_parent() -> argparse.ArgumentParser:
    """What a plugin command's parser starts from: ``--debug``, as every command takes it."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parent


def _fail_with(error: ZooError, args: argparse.Namespace) -> int:
    raise error


def _add_place_arguments(sub: argparse.ArgumentParser) -> None:
    """Where and at what precision inference runs: the same for `imgzoo run` and `imgzoo serve`."""
    sub.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    sub.add_argument(
        "--precision",
        default="auto",
        choices=INFERENCE_PRECISIONS,
        help="auto (default): bf16 where the hardware computes it natively, else fp32",
    )


class _CommandParser(argparse.ArgumentParser):
    """A command's parser; ``imgzoo train --help`` also lists the trainer's settings, read from
    TrainConfig only when help is asked for."""

    def format_help(self) -> str:
        text = super().format_help()
        if self.prog.split()[-1] != "train":
            return text
        from imgzoo.training.config import TrainConfig

        lines = [
            "",
            "training settings (--set KEY=VALUE, or KEY = VALUE in --config; "
            "the task's own: imgzoo info TASK):",
        ]
        for name, field in TrainConfig.model_fields.items():
            lines.append(f"  {name} = {field.default!r}: {field.description}")
        return text + "\n".join(lines) + "\n"


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"imgzoo: warning: {message}", file=sys.stderr)


def _report_plugin_failures(args: argparse.Namespace) -> None:
    if args.command == "plugins":
        return
    for problem in plugins.setting_problems():
        print(f"imgzoo: warning: {problem}", file=sys.stderr)
    for info in plugins.load_errors():
        print(f"imgzoo: warning: plugin {info.name!r} failed to load: {info.error}", file=sys.stderr)


# ── commands ──────────────────────────────────────────────────────────────────────────────
def _cmd_list(args: argparse.Namespace) -> int:
    names = catalogue.list_tasks(args.pattern)
    infos = [catalogue.task_info(name) for name in names]
    clashes = _clashes(args.pattern)
    for clash in clashes:
        print(f"imgzoo: warning: {clash}", file=sys.stderr)
    if not infos:
        _explain_missing_tasks(args.pattern, clashes)
    if args.json:
        print(json.dumps(catalogue.describe_tasks(names), indent=2))
        return 0
    if not infos:
        print(f"no tasks match {args.pattern!r}" if args.pattern != "*" else "no tasks installed")
        return 0
    width = max(len(info.name) for info in infos)
    for info in infos:
        weights = info.default_weights or "(no weights)"
        print(f"{info.name:<{width}}  {info.description}  [default weights: {weights}]")
    datasets = plugins.dataset_descriptions()
    if datasets and args.pattern == "*":
        print("\ndata sources for --data (besides folders):")
        for name, description in sorted(datasets.items()):
            print(f"  {name}: {description}")
    return 0


def _clashes(pattern: str) -> list[str]:
    """A sentence for each task name matching ``pattern`` (and, when listing everything, each
    dataset name) that several plugins register, which makes it unusable."""
    found = [
        plugins.clash_error("task", name, owners)
        for name, owners in sorted(plugins.task_conflicts().items())
        if fnmatch.fnmatchcase(name, pattern)
    ]
    if pattern == "*":
        found += [
            plugins.clash_error("dataset", name, owners)
            for name, owners in sorted(plugins.dataset_conflicts().items())
        ]
    return [str(error) for error in found]


def _explain_missing_tasks(pattern: str, clashes: list[str]) -> None:
    """An empty listing is an error when broken plugins may be why it is empty."""
    failed = sorted(info.name for info in plugins.load_errors())
    if not failed and not clashes:
        return
    reasons = []
    if failed:
        reasons.append(f"plugin{'s' * (len(failed) > 1)} {', '.join(map(repr, failed))} failed to load")
    if clashes:
        reasons.append(f"{len(clashes)} name{'s' * (len(clashes) > 1)} clash between plugins")
    match = f" match {pattern!r}" if pattern != "*" else ""
    raise PluginError(
        f"no usable tasks{match}: {' and '.join(reasons)} (warnings above); `imgzoo plugins` shows "
        f"why, and {plugins.ENV_DENY}=<plugin name> disables a plugin"
    )


def _cmd_info(args: argparse.Namespace) -> int:
    info = catalogue.task_info(args.task)
    if args.schema:
        print(json.dumps(info.config_schema, indent=2))
        return 0
    trained = catalogue.weights_config(info.name) if info.default_weights else None
    if args.json:
        shown = {**info.as_dict(), "config_schema": info.config_schema, "default_weights_config": trained}
        print(json.dumps(shown, indent=2))
        return 0
    print(f"{info.name}: {info.description}")
    print(f"  plugin: {info.plugin}")
    print(f"  precision: {_auto_precision_on_cpu()}")
    print("  weights:")
    if not info.weights:
        print("    (none registered: train some with `imgzoo train`)")
    for name, entry in info.weights.items():
        marker = " (default)" if name == info.default_weights else ""
        print(f"    {name}{marker}: {entry.source}")
        print(f"      sha256 {entry.sha256 or '(not given)'}  license {entry.license or '?'}")
        if entry.card:
            print(f"      card {entry.card}")
        if entry.metrics:
            print("      metrics " + ", ".join(f"{k}={v}" for k, v in entry.metrics.items()))
    if trained is not None:
        print(f"  config (as the default weights {info.default_weights!r} use it):")
    elif info.default_weights:
        pending = info.default_weights
        print(f"  config (class defaults; the default weights' own show once {pending!r} is downloaded):")
    else:
        print("  config:")
    for field, spec in info.config_schema.get("properties", {}).items():
        default = spec.get("default", "(required)")
        # The weights carry the config they were trained with, which wins over the class's.
        if trained is not None and field in trained and trained[field] != default:
            value = f"{trained[field]!r} (default weights; {default!r} without them)"
        else:
            value = repr(default)
        print(f"    {field} = {value}: {spec.get('description', '')}")
    return 0


def _auto_precision_on_cpu() -> str:
    """What ``--precision auto`` runs on this CPU and why, told without importing torch."""
    from imgzoo.hardware import cpu_bf16_feature

    feature = cpu_bf16_feature()
    chosen = f"bf16 (this CPU has {feature})" if feature else "fp32 (this CPU has no native bf16)"
    return f"auto runs {chosen} on the CPU; bf16 on a CUDA GPU of compute capability 8.0+"


def _cmd_serve(args: argparse.Namespace) -> int:
    from imgzoo.serve import serve

    settings = ServeSettings(
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        queue=args.queue,
        timeout=args.timeout,
        max_request_bytes=int(args.max_request_mb * 2**20),
        max_pixels=args.max_pixels,
        max_models=args.max_models,
        max_memory_bytes=None if args.max_memory_gb is None else int(args.max_memory_gb * 2**30),
        body_timeout=args.body_timeout,
        allowed_hosts=args.allowed_hosts,
        weights=_served_weights(args.weights),
    )
    if args.engine == "ray":
        from imgzoo.integrations.ray import serve_on_ray

        serve_on_ray(args.tasks, settings, host=args.host, port=args.port, replicas=args.replicas)
        return 0
    serve(args.tasks, settings, host=args.host, port=args.port)
    return 0


def _port(text: str) -> int:
    """An argparse type: a TCP port number."""
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return int(text)


def _finite_float(text: str) -> float:
    """An argparse type: a number that is neither NaN nor infinite (checked for range later)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _host_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated host names."""
    hosts = tuple(host.strip() for host in text.split(",") if host.strip())
    if not hosts:
        raise argparse.ArgumentTypeError(f"must name at least one host, got {text!r}")
    return hosts


def _served_weights(assignments: Sequence[str]) -> dict[str, str]:
    """``--weights TASK=WEIGHTS`` flags as a mapping, each task checked to exist."""
    chosen: dict[str, str] = {}
    for assignment in assignments:
        task, equals, weights = assignment.partition("=")
        if not equals or not task.strip() or not weights:
            raise ArgumentError(
                f"--weights {assignment!r}: write TASK=WEIGHTS, e.g. --weights colorize=minifigs-mse",
                argument="--weights",
            )
        plugins.task_declaration(task.strip())  # an unknown task is named now, with close names
        chosen[task.strip()] = weights
    return chosen


def _cmd_publish(args: argparse.Namespace) -> int:
    from imgzoo.publishing import PLACEHOLDER_REPO, publish

    if args.repo and args.push and args.repo != args.push:
        raise ArgumentError(
            f"--repo {args.repo} and --push {args.push} name different repositories: give one",
            argument="--repo",
        )
    published = publish(
        args.source,
        args.output,
        repo=args.push or args.repo,
        license=args.license,
        push=args.push is not None,
        overwrite=args.overwrite,
    )
    print(f"wrote {published.folder}: {', '.join(published.files)}")
    if published.pushed is not None:
        print(f"pushed: {published.pushed}")
        print(f"use it with: --weights {published.address}")
    elif PLACEHOLDER_REPO in published.address:
        print(f"the address {published.address} is a placeholder: publish again with --repo OWNER/REPO")
    else:
        print(f"upload it with --push {args.repo}, then use it with: --weights {published.address}")
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
        if info.backends:
            print(f"  backends: {', '.join(info.backends)}")
        if info.loggers:
            print(f"  loggers: {', '.join(info.loggers)}")
        if info.commands:
            print(f"  commands: {', '.join(info.commands)}")
        for clash in info.clashes:
            print(f"  clash: {clash}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from imgzoo.data.pack import pack_shards, shard_pattern

    paths = pack_shards(
        args.folder,
        args.output,
        shard_size=args.shard_size,
        prefix=args.prefix,
        scale=args.scale,
        overwrite=args.overwrite,
    )
    print(f"wrote {len(paths)} shard(s) to {args.output}")
    print(f"train on them with: --data webdataset:{shard_pattern(paths)}")
    return 0


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    from imgzoo.scaffold import new_plugin

    folder = new_plugin(args.name, args.dir)
    if args.name in catalogue.list_tasks():
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
    from imgzoo.outputs import plan_outputs

    if args.batch_size < 1:
        raise ArgumentError(
            f"--batch-size must be at least 1, got {args.batch_size}", argument="--batch-size"
        )
    if args.concurrency is not None and (args.engine != "ray" or args.concurrency < 1):
        problem = (
            "is for --engine ray" if args.engine != "ray" else f"must be at least 1, got {args.concurrency}"
        )
        raise ArgumentError(f"--concurrency {problem}", argument="--concurrency")
    # Everything that can be checked without the model is checked before torch is imported, so
    # that a typo is answered at once and a refused run has written nothing.
    declared = plugins.task_declaration(args.task)
    _refuse_urls([*args.inputs, *([args.output] if args.output else [])])
    jobs = expand_inputs(args.inputs)
    extra_paths = _named_input_paths(declared, args.input, jobs)
    is_map = declared.output_kind == "map"
    output = args.output or str(Path("outputs") / args.task)
    shard = _torchrun_shard()
    targets = plan_outputs(
        output,
        [path for path, _ in jobs],
        [str(Path(name).with_suffix(MAP_SUFFIX)) if is_map else name for _, name in jobs],
        overwrite=args.overwrite,
        overwrite_hint="--overwrite",
        suffixes=(MAP_SUFFIX,) if is_map else WRITABLE_SUFFIXES,
        also_read=[path for paths in extra_paths.values() for path in paths],
        shard=shard,
    )
    overrides = config_module.parse_assignments(args.set, task=args.task)
    _refuse_inputs_as_settings(declared, overrides)
    if args.engine == "ray":
        return _run_on_ray(args, jobs, targets, extra_paths, overrides, output)
    # The backend settles "auto" first (ONNX Runtime: the CPU); a GPU left to choose is shared out.
    device = backend_class(args.backend).choose_device(args.device)

    from imgzoo.model_cache import cached_pipeline

    pipeline = cached_pipeline(
        args.task,
        weights=args.weights,
        device=_shard_device(device, shard),
        precision=args.precision,
        backend=args.backend,
        config_file=args.config,
        options=overrides,
    )
    runner = _FolderRun(
        pipeline,
        plugins.get_task_class(args.task),
        extra_paths,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    index, count = shard
    work = list(zip((path for path, _ in jobs), targets, strict=True))[index::count]
    written, unreadable = runner.run(work)
    place = f" (process {index + 1} of {count})" if count > 1 else ""
    # The reasons come before the summary, so that "wrote 0 images" never stands unexplained.
    for problem in unreadable:
        print(f"imgzoo: skipped: {problem}", file=sys.stderr)
    if written:
        print(f"wrote {written} image{'s' if written != 1 else ''} to {output}{place}")
    if unreadable:
        outcome = "nothing was written" if not written else f"the other {written} were written"
        print(
            f"imgzoo: error: {len(unreadable)} of {len(work)} inputs could not be read{place}; {outcome}",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_on_ray(
    args: argparse.Namespace,
    jobs: list[tuple[Path, str]],
    targets: list[Path],
    extra_paths: dict[str, list[Path]],
    overrides: dict[str, Any],
    output: str,
) -> int:
    """``imgzoo run --engine ray``: the run planned above (the same outputs, refused the same way)
    on Ray Data, each worker saving its results."""
    if _torchrun_shard()[1] > 1:
        raise ArgumentError(
            "--engine ray shares the run out itself: start it once, not with torchrun", argument="--engine"
        )
    from imgzoo.integrations.ray import run_files

    written = run_files(
        args.task,
        list(zip((path for path, _ in jobs), targets, strict=True)),
        extra_paths,
        concurrency=args.concurrency,
        weights=args.weights,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        config_file=args.config,
        batch_size=args.batch_size,
        **overrides,
    )
    print(f"wrote {written} image{'s' if written != 1 else ''} to {output}")
    return 0


def _refuse_urls(paths: Sequence[str]) -> None:
    """``imgzoo run`` plans its outputs on a file system it can list (on a cluster, a shared one):
    object storage is for a Ray Dataset of its own, which ``TaskPredictor`` runs."""
    for path in paths:
        if "://" in path:
            raise ArgumentError(
                f"{path}: imgzoo run reads and writes files (on a cluster, on a shared file system); for "
                "object storage, read a Ray Dataset and map it with imgzoo.integrations.ray.TaskPredictor",
                argument="INPUT",
            )


def _refuse_inputs_as_settings(declared: TaskDeclaration, overrides: dict[str, Any]) -> None:
    """``--set`` names config fields; a named input given there is pointed to ``--input``."""
    from imgzoo.errors import InputError
    from imgzoo.options import split_options

    inputs, _ = split_options(declared, overrides)
    for name in sorted(inputs):
        raise InputError(
            f"--set {name}=...: {name!r} is an input of task {declared.name!r}, not a config field: "
            f"pass --input {name}=FILE",
            task=declared.name,
            input=name,
        )


def _torchrun_shard() -> tuple[int, int]:
    """(this process's index, the number of processes) when ``torchrun`` started several;
    (0, 1) otherwise. The processes need not talk to each other: each takes every
    ``count``-th input, and all of them plan the same output names."""
    count = int(os.environ.get("WORLD_SIZE", "1"))
    index = int(os.environ.get("RANK", "0"))
    if count < 1 or not 0 <= index < count:
        problem = f"RANK={index} and WORLD_SIZE={count} do not describe a process of a run"
        raise ConfigError("", [("RANK, WORLD_SIZE", problem)], source="the environment")
    return index, count


def _shard_device(device: str, shard: tuple[int, int]) -> str:
    """One GPU per process when several share a machine with GPUs: the ``LOCAL_RANK``-th."""
    if shard[1] == 1 or device not in ("auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"


def _cmd_export(args: argparse.Namespace) -> int:
    from imgzoo import config as config_module

    plugins.task_declaration(args.task)  # a misspelled task is reported before torch loads
    overrides = config_module.parse_assignments(args.set, task=args.task)

    from imgzoo.exporting import export

    report = export(
        args.task,
        args.weights,
        format=args.format,
        output=args.output,
        config_file=args.config,
        overwrite=args.overwrite,
        standalone=args.standalone,
        **overrides,
    )
    print(report)
    return 0


class _FolderRun:
    """``imgzoo run`` over many inputs, reading ahead of the model and finishing behind it.

    A few threads read and decode the next batches while the pipeline runs the current one, and
    two batches run through :meth:`Pipeline.run` at once: their forward passes take turns, so
    one batch's postprocessing and saving overlaps the next one's forward pass (OpenCV releases
    the GIL while it decodes and encodes, and torch while it computes). Each image's result is
    made and saved exactly as one at a time would be; unreadable inputs are reported in input
    order, and each warning of the task is printed once.
    """

    IO_THREADS = 2
    """Enough to keep decoding off the model's path on a 2-core machine, few enough not to take
    the cores the model computes on."""
    BATCHES_IN_FLIGHT = 2

    def __init__(
        self,
        pipeline: Pipeline,
        task_class: type[Task],
        extra_paths: dict[str, list[Path]],
        *,
        batch_size: int,
        overwrite: bool,
    ) -> None:
        self.pipeline = pipeline
        self.task_class = task_class
        self.extra_paths = extra_paths
        self.batch_size = batch_size
        self.overwrite = overwrite  # whether a result may replace a file that appears meanwhile
        self.specs = {spec.name: spec for spec in task_class.extra_inputs}
        self.single = False  # whether the run is over one input (set by run())
        self.warned: set[str] = set()

    def run(self, work: list[tuple[Path, Path]]) -> tuple[int, list[str]]:
        """Run on (input, output file) pairs in order; returns how many were written and why
        the others could not be read."""
        self.single = len(work) == 1
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        starts = range(0, len(work), self.batch_size)
        written, unreadable = 0, []
        readers = ThreadPoolExecutor(self.IO_THREADS, thread_name_prefix="imgzoo-io")
        runners = ThreadPoolExecutor(self.BATCHES_IN_FLIGHT, thread_name_prefix="imgzoo-run")
        try:
            reads: deque[list[Future[Any]]] = deque()
            runs: deque[tuple[Future[list[Any]], list[Path]]] = deque()

            def read_ahead(start: int) -> None:
                indices = range(start, min(start + self.batch_size, len(work)))
                reads.append([readers.submit(self._read, work[index][0], index) for index in indices])

            def finish_oldest() -> int:
                future, sources = runs.popleft()
                results = future.result()  # a failed batch stops the run at once
                for source, result in zip(sources, results, strict=True):
                    self._report_warnings(source, result.warnings)
                return len(results)

            for start in starts[: self.BATCHES_IN_FLIGHT]:
                read_ahead(start)
            for number, start in enumerate(_progress(starts, total=len(work), step=self.batch_size)):
                requests, sources, problems = self._collect(
                    reads.popleft(), work[start : start + self.batch_size]
                )
                unreadable += problems
                if number + self.BATCHES_IN_FLIGHT < len(starts):
                    read_ahead(starts[number + self.BATCHES_IN_FLIGHT])
                if len(runs) >= self.BATCHES_IN_FLIGHT:
                    written += finish_oldest()
                if requests:
                    batch = runners.submit(self.pipeline.run, requests, batch_size=self.batch_size)
                    runs.append((batch, sources))
            while runs:
                written += finish_oldest()
        finally:
            # On an error or Ctrl-C, what has not started yet is dropped; what has, finishes.
            readers.shutdown(cancel_futures=True)
            runners.shutdown(cancel_futures=True)
        return written, unreadable

    def _read(self, path: Path, index: int) -> tuple[Any, dict[str, Any]]:
        from imgzoo import images

        named = {name: _read_named_input(name, paths[index]) for name, paths in self.extra_paths.items()}
        return images.load_image(path), named

    def _collect(
        self, futures: list[Any], work: list[tuple[Path, Path]]
    ) -> tuple[list[Any], list[Path], list[str]]:
        """A read batch in input order: the pipeline's requests, their input files, and why each
        unreadable input could not be read (one bad file does not stop the others)."""
        from imgzoo.errors import InputError, InvalidImageError
        from imgzoo.inputs import accept_input
        from imgzoo.pipeline import Request

        requests, sources, problems = [], [], []
        for future, (source, target) in zip(futures, work, strict=True):
            try:
                image, named = future.result()
                for name, extra in named.items():
                    accept_input(self.task_class, self.specs[name], image, extra)
            except InvalidImageError as error:
                problems.append(str(error))
                continue
            except InputError as error:
                if self.single:  # one image: its mask's problem is the run's, in one line
                    raise
                problems.append(str(error))  # among many: it skips its image only, as above
                continue
            requests.append(Request(image, named, target, self.overwrite))
            sources.append(source)
        return requests, sources, problems

    def _report_warnings(self, source: Path, messages: list[str]) -> None:
        """Each of the task's warnings on stderr, once per run, naming the first input it was about."""
        for message in messages:
            if message not in self.warned:
                self.warned.add(message)
                print(f"imgzoo: warning: {message} ({source})", file=sys.stderr)


def _named_input_paths(
    declared: TaskDeclaration, assignments: Sequence[str], jobs: list[tuple[Path, str]]
) -> dict[str, list[Path]]:
    """The file of each ``--input NAME=PATH`` for each job, found before any model loads: PATH
    itself for a single input, else the file in folder PATH named like the job's input."""
    from imgzoo.data._files import find_images
    from imgzoo.errors import InputError
    from imgzoo.inputs import check_input_names

    given: dict[str, Path] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip() or not value:
            raise ArgumentError(
                f"--input {assignment!r}: write NAME=PATH, e.g. --input mask=mask.png", argument="--input"
            )
        given[name.strip()] = Path(value)
    check_input_names(declared, given, flag="--input {name}=FILE")
    found: dict[str, list[Path]] = {}
    for name, path in given.items():
        if not path.is_dir():
            if len(jobs) > 1:
                raise InputError(
                    f"--input {name}={path}: there are {len(jobs)} inputs, so give a folder holding one "
                    f"{name} per input, named like the inputs",
                    task=declared.name,
                    input=name,
                )
            found[name] = [path]
            continue
        by_stem = {
            file.relative_to(path).with_suffix("").as_posix(): file for file in find_images(path).files
        }
        found[name] = []
        for source, result_name in jobs:
            stem = Path(result_name).with_suffix("").as_posix()
            if stem not in by_stem:
                raise InputError(
                    f"--input {name}={path}: no {name} for {source} (expected {path / stem}.png or "
                    "another image suffix)",
                    task=declared.name,
                    input=name,
                )
            found[name].append(by_stem[stem])
    return found


def _read_named_input(name: str, path: Path) -> Any:
    from imgzoo import images
    from imgzoo.errors import InvalidImageError

    try:
        return images.load_image(path)
    except InvalidImageError as error:
        raise InvalidImageError(f"input {name!r}: {error}", source=error.source) from error


def expand_inputs(inputs: Sequence[str]) -> list[tuple[Path, str]]:
    """(input file, output file name) for every image: files as given, folders searched
    recursively (their layout is kept in the output; hidden files are left out), globs expanded
    for shells that leave them alone. A path that exists is that file or folder whatever its
    characters (``x[1].png``); only one that does not is tried as a pattern, and the number of
    files it matched is said on stderr. A missing file, a pattern matching nothing, a folder
    without images or a FIFO or device is an error, found before any model loads; a subfolder
    that cannot be searched is reported as a warning."""
    from imgzoo.data._files import find_images
    from imgzoo.errors import InvalidImageError

    jobs: list[tuple[Path, str]] = []
    for item in inputs:
        matches = [item]
        if glob.has_magic(item) and not os.path.lexists(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise InvalidImageError(f"no files match {item!r}", source=item)
            print(f"imgzoo: {item!r} matched {len(matches)} path(s)", file=sys.stderr)
        for match in map(Path, matches):
            try:
                mode = match.stat().st_mode
            except FileNotFoundError:
                raise InvalidImageError(f"{match}: no such file", source=match) from None
            except OSError as error:  # a name too long, a link loop, ...
                raise InvalidImageError(f"{match}: {error.strerror or error}", source=match) from None
            if stat.S_ISDIR(mode):
                found = find_images(match).files
                if not found:
                    raise InvalidImageError(f"no images in folder {match}", source=match)
                jobs += [(p, p.relative_to(match).with_suffix(RESULT_SUFFIX).as_posix()) for p in found]
            elif stat.S_ISREG(mode):
                jobs.append((match, match.with_suffix(RESULT_SUFFIX).name))
            else:
                raise InvalidImageError(
                    f"{match} is not a regular file (a pipe or a device?): give an image file", source=match
                )
    return jobs


def _progress(starts: range, *, total: int, step: int) -> Iterator[int]:
    """Yield batch starts, with a progress bar counting images when there are many."""
    if total < 4:
        yield from starts
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="img", file=sys.stderr) as bar:
        for start in starts:
            yield start
            bar.update(min(step, total - start))


if __name__ == "__main__":
    sys.exit(main())
