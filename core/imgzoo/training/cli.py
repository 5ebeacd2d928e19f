"""The ``imgzoo train`` and ``imgzoo eval`` commands (wired into :mod:`imgzoo.cli`).

Errors are left to the caller, which prints a :class:`~imgzoo.errors.ZooError` as one line;
an interrupted run says where its checkpoint is and how to resume, and exits as shells report a
process ended by that signal: 130 for Ctrl-C, 143 for SIGTERM.
Building the parsers imports no torch (``imgzoo list`` builds them too); running does.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any

from imgzoo.config import flatten_dotted, parse_assignments
from imgzoo.hardware import INFERENCE_PRECISIONS

__all__ = ["add_eval_arguments", "add_train_arguments", "run_eval", "run_train"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, also for a run that a callback stopped
EXIT_SIGNALLED = 128  # plus the signal's number
# A default that answers in under a minute on a 2-core CPU (the default colorize weights on
# minifigs: about 40 s); --limit N or --all measure more.
EVAL_LIMIT = 300


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="the task to train (see `imgzoo list`)")
    parser.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="a folder of images, paired:DIR, aligned:DIR, webdataset:SHARDS, hfds:DATASET or a dataset name",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="where checkpoints, logs and weights go")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML/JSON file of settings, as --set takes them (steps = 200), which --set overrides",
    )
    _add_settings(
        parser,
        "a setting of the task (`imgzoo info TASK`) or of the trainer (listed below): steps=200, "
        "batch_size=16, device=cuda, precision=bf16, image_size=64 (repeatable)",
    )
    parser.add_argument(
        "--max-time",
        metavar="DURATION",
        help="a wall-clock budget: 90s, 20m, 2h or seconds (the same as --set max_time=...); the run "
        "stops at the step that ends nearest it and writes its checkpoint and weights",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    parser.add_argument(
        "--weights",
        help="start from these weights (a name, path, URL or hf:// address) instead of a fresh init",
    )
    parser.add_argument(
        "--logger",
        dest="loggers",
        action="append",
        metavar="NAME",
        help="also log to tensorboard (OUT/tensorboard/), mlflow (MLFLOW_TRACKING_URI, else OUT/mlflow.db) "
        "or a logger a plugin adds (repeatable; the same as --set loggers='[\"NAME\"]')",
    )


def _add_settings(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="the task to evaluate (see `imgzoo list`)")
    parser.add_argument(
        "--data", required=True, metavar="SPEC", help="the images to evaluate on (a data spec)"
    )
    parser.add_argument(
        "--weights",
        help="a registered name, a path, a URL or an hf:// address (default: the task's default weights)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the metrics, the weights and the data measured as JSON"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="auto (default, as `imgzoo run`: bf16 where the device computes it natively, else fp32), "
        "fp32 (figures comparable across machines), bf16 or fp16",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--limit",
        "--max-samples",
        type=int,
        default=EVAL_LIMIT,
        metavar="N",
        help=f"evaluate on N images spread evenly over the data (default {EVAL_LIMIT})",
    )
    amount.add_argument(
        "--all", dest="limit", action="store_const", const=None, help="evaluate on every image of the data"
    )
    parser.add_argument(
        "--full-resolution",
        action="store_true",
        help="measure what users get: each picture at its own size, made into the task's input, run "
        "through the whole pipeline (as `imgzoo run`) and compared with the picture",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        metavar="N",
        help="the size a named dataset (minifigs) draws its pictures at (default: the task's image_size)",
    )
    _add_settings(parser, "a task setting (repeatable)")


def run_train(args: argparse.Namespace) -> int:
    from imgzoo.training.api import train
    from imgzoo.training.results import TrainingInterrupted

    main_process = int(os.environ.get("RANK", "0")) == 0
    settings = _settings(args.settings, task=args.task)
    if args.loggers:
        settings["loggers"] = [*settings.get("loggers", []), *args.loggers]
    if args.max_time is not None:
        settings["max_time"] = args.max_time
    try:
        result = train(
            args.task,
            args.data,
            args.out,
            config_file=args.config,
            resume=args.resume,
            weights=args.weights,
            **settings,
        )
    except TrainingInterrupted as stop:
        if main_process:
            print(f"\n{stop}", file=sys.stderr)
            if stop.checkpoint is not None:
                command = [
                    "imgzoo",
                    "train",
                    args.task,
                    "--data",
                    args.data,
                    "--out",
                    str(args.out),
                    "--resume",
                ]
                print(f"resume with: {shlex.join(command)}", file=sys.stderr)
        return EXIT_SIGNALLED + stop.signal_number if stop.signal_number else EXIT_INTERRUPTED
    if main_process:
        metrics = (
            ", ".join(f"{name} {value:.4g}" for name, value in result.metrics.items())
            or "no validation split"
        )
        print(f"trained {result.task} for {result.steps} steps ({result.epochs:.2f} epochs): {metrics}")
        waiting = f"{result.data_wait_fraction:.1%} of the time waiting for data"
        print(f"{result.images_per_s:.1f} images/s, {waiting}")
        print(f"weights: {result.weights} (sha256 {result.sha256})")
        if result.registry_entry is not None:
            print(f"registry entry ({result.registry_entry}):\n")
            print(result.registry_entry.read_text(encoding="utf-8"))
    return 0


def _settings(assignments: list[str], *, task: str) -> dict[str, Any]:
    """``--set`` values by name as written (``steps=3``, ``unet.ngf=8``), each read as JSON where
    it parses: :func:`~imgzoo.training.train` sorts them into task and training settings."""
    return flatten_dotted(parse_assignments(assignments, task=task))


def run_eval(args: argparse.Namespace) -> int:
    from imgzoo.training.api import evaluate

    evaluation = evaluate(
        args.task,
        args.data,
        weights=args.weights,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        max_samples=args.limit,
        overrides=parse_assignments(args.settings, task=args.task),
        mode="pipeline" if args.full_resolution else "model",
        resolution=args.resolution,
    )
    if args.json:
        print(json.dumps(evaluation.report(), indent=2))
        return 0
    weights, data = evaluation.weights, evaluation.data
    if weights["path"] is None:
        print("weights: none (an untrained model)")
    else:
        print(f"weights: {weights['name']} ({weights['path']}, sha256 {weights['sha256']})")
    more = "" if data["images"] == data["available"] else " (--limit N or --all for more)"
    how = ", each at its own size through the whole pipeline" if data["mode"] == "pipeline" else ""
    print(f"data: {data['spec']}, {data['images']} of {data['available']} images{how}{more}")
    print(f"precision: {data['precision']}")
    for name, value in evaluation.items():
        print(f"{name:<14} {value:.4f}")
    return 0
