"""torchrun support: process-group set-up and the few collectives the trainer needs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from attnclf.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when running under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that prints and writes files."""
        return self.rank == 0


def init_from_env(device_type: str) -> DistContext:
    """Join the process group that torchrun describes (gloo on CPU, nccl on CUDA).

    On CUDA, CPU tensors still go through gloo, so `any_rank` never waits on the GPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend=backend)
    if not ctx.is_main:  # rank 0 reports data warnings once for the whole job
        logging.getLogger("attnclf").setLevel(logging.ERROR)
    return ctx


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over all ranks (a no-op in a single process)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_sum_cpu(
    tensor: torch.Tensor, ctx: DistContext, device: torch.device
) -> torch.Tensor:
    """`all_reduce_sum` of a CPU tensor, reduced on `device` (NCCL reduces only CUDA tensors)."""
    if not ctx.enabled:
        return tensor
    return all_reduce_sum(tensor.to(device), ctx).cpu()


def all_reduce_max(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Maximum of a tensor over all ranks (a no-op in a single process)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True when `flag` is set on any rank (a CPU collective: it never syncs a GPU)."""
    if not ctx.enabled:
        return flag
    return bool(all_reduce_max(torch.tensor([int(flag)]), ctx).item())


def local_rank_zero_first(ctx: DistContext, fn: Callable[[], T]) -> T:
    """Run `fn` (a download, say) on each node's local rank 0, then on the node's other ranks.

    The other ranks wait for it, so they find its result (a file) in place instead of racing
    to create it; if it fails there, every rank stops with an error instead of hanging.
    """
    error: UserError | None = None
    result: T | None = None
    if ctx.local_rank == 0:
        try:
            result = fn()
        except UserError as exc:
            error = exc
    failed = any_rank(error is not None, ctx)
    if error is not None:
        raise error
    if failed:
        raise UserError("data preparation failed on another process; see its error above")
    return fn() if ctx.local_rank != 0 else result


def shutdown(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
