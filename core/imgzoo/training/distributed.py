"""Data-parallel training over several processes with ``torch.distributed`` (launched by ``torchrun``).

The same command line runs on one process or many: ``torchrun --nproc_per_node=N`` sets the
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ...) and this module joins the group, gloo
on CPU and nccl on CUDA. Every process holds a full copy of the models and trains on its own
shard of each global batch; gradients are averaged before every optimizer step, so N processes
take the same steps as one process with the same global batch.

Gradients are averaged by torch's ``DistributedDataParallel``, one wrapper per trained model
(:func:`wrap_trained_models`): its all-reduces run bucket by bucket while the backward pass is
still computing the earlier layers. One wrapper per model, not one around all of them, because a
task steps its optimizers in turn (a GAN's critic, then its generator), each backward reaching
one model's parameters only.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from imgzoo.errors import ZooError
from imgzoo.runtime import resolve_device

__all__ = [
    "Distributed",
    "any_process",
    "broadcast_models",
    "check_on_main",
    "mean_over_processes",
    "setup",
    "teardown",
    "unsynchronised",
    "wrap_trained_models",
]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> tuple[Distributed, torch.device]:
    """Join the process group when launched by torchrun; return this process's place and device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    target = resolve_device(device)
    if world_size <= 1:
        return Distributed(), target
    if target.type == "cuda":
        target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(target)
    initialized_here = not dist.is_initialized()
    if initialized_here:
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), initialized_here), target


def teardown(group: Distributed, *, wait: bool = True) -> None:
    """Leave the process group (if this module joined it), first waiting for the others unless
    ``wait`` is false (after an error, when they may never arrive)."""
    if group.enabled and wait:
        dist.barrier()
    if group.initialized_here:
        dist.destroy_process_group()


def broadcast_models(models: Mapping[str, torch.nn.Module], group: Distributed) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    if not group.enabled:
        return
    for model in models.values():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def wrap_trained_models(
    models: Mapping[str, torch.nn.Module],
    trained: Iterable[torch.nn.Parameter],
    group: Distributed,
    device: torch.device,
) -> dict[str, torch.nn.Module]:
    """``models`` as a task's step should call them: each model holding a ``trained``
    parameter wrapped in ``DistributedDataParallel`` when the run is distributed, the others
    (and all of them in a single process) as they are. The wrappers share the models'
    parameters: checkpoints and weights keep saving the models themselves."""
    if not group.enabled:
        return dict(models)
    trained_ids = {id(param) for param in trained}
    wrapped: dict[str, torch.nn.Module] = {}
    for name, model in models.items():
        if not any(id(param) in trained_ids for param in model.parameters()):
            wrapped[name] = model
            continue
        wrapped[name] = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            # A step may leave parameters out of a backward: a branch not taken, a critic
            # frozen (requires_grad_(False)) while the generator's loss goes through it.
            find_unused_parameters=True,
            **_local_buffers(),
        )
    return wrapped


def _local_buffers() -> dict[str, Any]:
    """DDP's option that leaves buffers (batch-norm statistics) to each process after the
    start, as they were before DDP: only the main process's are evaluated and saved, and
    broadcasting them before every forward would modify, in place, buffers that a GAN's
    second forward still needs. Newer torch renames the option."""
    parameters = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers" if "forward_sync_buffers" in parameters else "broadcast_buffers": False}


@contextlib.contextmanager
def unsynchronised(models: Iterable[torch.nn.Module], *, enabled: bool) -> Iterator[None]:
    """Within the ``with`` (when ``enabled``), backward passes through the wrapped ``models``
    accumulate gradients locally: the micro-batches of an accumulation window before its last,
    whose backward then averages the whole window's gradients."""
    with contextlib.ExitStack() as stack:
        if enabled:
            for model in models:
                if isinstance(model, torch.nn.parallel.DistributedDataParallel):
                    stack.enter_context(model.no_sync())
        yield


def any_process(flag: bool, group: Distributed, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any of them (to stop together)."""
    if not group.enabled:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def check_on_main(check: Callable[[], object], group: Distributed, device: torch.device) -> None:
    """Run ``check`` in the main process only, and fail in every process if it fails: with its
    error in the main process, with a ZooError pointing there in the others (which would
    otherwise wait forever in the next collective operation)."""
    failure: Exception | None = None
    if group.is_main:
        try:
            check()
        except Exception as error:
            failure = error
    if any_process(failure is not None, group, device):
        if failure is not None:
            raise failure
        raise ZooError(f"process {group.rank} stopped: a check failed in the main process (see its error)")


def mean_over_processes(values: torch.Tensor, group: Distributed) -> torch.Tensor:
    if group.enabled:
        values = values.clone()
        dist.all_reduce(values)
        values /= group.world_size
    return values
