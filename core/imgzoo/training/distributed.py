"""Data-parallel training over several processes with ``torch.distributed`` (launched by ``torchrun``).

The same command line runs on one process or many: ``torchrun --nproc_per_node=N`` sets the
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ...) and this module joins the group, gloo
on CPU and nccl on CUDA. Every process holds a full copy of the models and trains on its own
shard of each global batch; gradients are averaged before every optimizer step, so N processes
take the same steps as one process with the same global batch.

Gradients are averaged here, in ``average_gradients``, rather than by wrapping models in
``DistributedDataParallel``: a task owns its step and may call a model several times per
backward or step two optimizers in turn (a GAN), which DDP's reducer does not allow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from imgzoo.errors import ZooError
from imgzoo.runtime import resolve_device

__all__ = [
    "Distributed",
    "any_process",
    "average_gradients",
    "broadcast_models",
    "check_on_main",
    "mean_over_processes",
    "setup",
    "teardown",
]

_BUCKET_ELEMENTS = 1 << 24  # 64 MB of float32 per all-reduce call


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


def average_gradients(params: Iterable[torch.nn.Parameter], group: Distributed) -> None:
    """Replace every gradient with its mean over all processes.

    A parameter that has a gradient on some process but not on another gets a zero one where it
    is missing; one that has none anywhere keeps ``None`` (so optimizers skip it, as they would
    in a single process).
    """
    if not group.enabled:
        return
    params = list(params)
    if not params:
        return
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=params[0].device)
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    grads = []
    for param, flag in zip(params, has_grad.tolist(), strict=True):
        if flag and param.grad is None:
            param.grad = torch.zeros_like(param)
        if param.grad is not None:
            grads.append(param.grad)
    for bucket in _buckets(grads):
        flat = torch.cat([grad.reshape(-1) for grad in bucket])
        dist.all_reduce(flat)
        flat /= group.world_size
        offset = 0
        for grad in bucket:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()


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


def _buckets(grads: list[torch.Tensor]) -> Iterable[list[torch.Tensor]]:
    """Gradients grouped by dtype and device, in chunks of at most ``_BUCKET_ELEMENTS``."""
    by_kind: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for grad in grads:
        by_kind.setdefault((grad.dtype, grad.device), []).append(grad)
    for same_kind in by_kind.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for grad in same_kind:
            if bucket and size + grad.numel() > _BUCKET_ELEMENTS:
                yield bucket
                bucket, size = [], 0
            bucket.append(grad)
            size += grad.numel()
        if bucket:
            yield bucket
