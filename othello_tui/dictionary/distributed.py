"""Data-parallel dictionary training under ``torchrun`` (torch.distributed): every rank draws its
own games, gradients and firing counts are summed over the ranks, so each step equals one
process's step on the ranks' batches together (exactly for TopK, whose loss is a mean over
tokens; AuxK's normalisation and BatchTopK's threshold use each rank's own batch).

Without torchrun (no ``WORLD_SIZE`` above 1) every function here is a no-op: a single process
trains exactly as it always did. gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor


def launched() -> bool:
    """Started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> None:
    """Join the process group (once) with the backend for ``device``."""
    if launched() and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Within: the process group joined (see :func:`init`). After: left, so that no rank's
    backend threads outlive the interpreter: a rank that left early while rank 0 still wrote
    could abort at exit with "terminate called without an active exception")."""
    init(device)
    try:
        yield
        barrier()  # every rank leaves together, after rank 0 has written
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def average_gradients(parameters) -> None:
    """Each gradient becomes the mean over the ranks (each rank's loss is a mean over its tokens)."""
    if size() == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= size()


def sum_(tensor: Tensor) -> Tensor:
    """In place: the sum over the ranks."""
    if size() > 1:
        dist.all_reduce(tensor)
    return tensor


def most(value: float) -> float:
    """The largest ``value`` over the ranks (so every rank takes the same time-based decisions)."""
    if size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor)


def broadcast_(tensors) -> None:
    """In place: rank 0's values everywhere."""
    if size() > 1:
        for tensor in tensors:
            dist.broadcast(tensor, 0)


def barrier() -> None:
    if size() > 1:
        dist.barrier()


def use_local_gpu(device: str) -> None:
    """Under torchrun on CUDA: "cuda" means this process's GPU (``LOCAL_RANK``)."""
    if launched() and device in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def gather(value) -> list:
    """Every rank's ``value`` (picklable), in rank order."""
    if size() == 1:
        return [value]
    out = [None] * size()
    dist.all_gather_object(out, value)
    return out
