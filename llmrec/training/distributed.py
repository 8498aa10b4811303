"""Data-parallel training through `torchrun` (gloo on CPU, nccl on GPUs): one process per worker.

    torchrun --nproc_per_node 2 -m llmrec pretrain --dataset ml-100k --objective next_item --out runs/x

Every rank builds the same windows and the same seeded batch order, and takes rows rank::world of each global
batch; the model (with its objectives) is wrapped in `DistributedDataParallel`, which averages gradients. To
make that average equal the single-process gradient of the global batch mean, each rank's loss is weighted by
its share of the batch's terms (`loss_weight`). Every rank validates (identical weights give identical
numbers, so they stop together); only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed() -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("LLMREC_DIST_BACKEND") == "nccl" else "gloo"
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size())


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """DDP around the training module (model + objectives); some objective parameters may go unused."""
    if not info.enabled:
        return module
    return nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)


def shard(idx: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's rows of a global batch."""
    return idx[info.rank :: info.world] if info.enabled else idx


def loss_weight(n_local: int, info: DistInfo) -> float:
    """world · n_local / n_global: DDP's gradient average then equals the gradient of the global mean."""
    if not info.enabled:
        return 1.0
    t = torch.tensor([float(n_local)], dtype=torch.float64)
    dist.all_reduce(t)
    total = float(t.item())
    return info.world * n_local / total if total > 0 else 0.0


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision, for every rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.broadcast(t, src=0)
    return bool(t.item())


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
