"""Several processes, one run: ``torchrun --nproc-per-node N pdmer train ...``.

Every process draws the same meta-batch (the draws are seeded by step), computes the gradients of its share of the
tasks (task i goes to process i mod N), and the summed gradients are all-reduced, so every process takes the same
optimiser step and the weights stay identical, as with DDP. gloo on CPU, nccl on CUDA. Batch-norm running
statistics, which each process updates from its own tasks, are averaged after each step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Group:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, count: int) -> list[int]:
        """The task indices this process computes."""
        return list(range(self.rank, count, self.size))

    def sum_(self, tensors: list[torch.Tensor]) -> None:
        if self.size > 1:
            flat = torch.cat([t.reshape(-1) for t in tensors])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for t in tensors:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def sum_floats(self, values: list[float]) -> list[float]:
        if self.size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def average_buffers(self, model: nn.Module) -> None:
        if self.size > 1:
            for buffer in model.buffers():
                if buffer.is_floating_point():
                    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                    buffer /= self.size

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def join(device: torch.device) -> Group:
    """The process group torchrun set up through the environment (RANK, WORLD_SIZE), or a group of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return Group()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Group(rank=dist.get_rank(), size=dist.get_world_size())


def leave(group: Group) -> None:
    """Tear the group down once every process is done with it: a process that destroys its side while another is
    still in a collective can take the other down with it."""
    if group.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
