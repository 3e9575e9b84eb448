"""torch.distributed in one place: process-group setup, reductions, work splitting.

Launch with ``torchrun --nproc_per_node N``; without torchrun everything degrades to a single
process. CPU uses gloo, CUDA uses NCCL. Each rank gets a share of every effective batch split
by token count, so the effective batch (in samples) does not depend on the number of ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from burnish.models.skipping import decoder_layers

__all__ = [
    "DistInfo",
    "all_reduce_max",
    "all_reduce_sum",
    "barrier",
    "full_state_dicts",
    "init_distributed",
    "load_full_state_dicts",
    "resolve_device",
    "shard_by_tokens",
    "shard_model",
    "shutdown_distributed",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, info: DistInfo | None = None) -> torch.device:
    """'auto' -> this rank's CUDA device if there is one, else CPU; a device this machine
    lacks is a ConfigError (see :func:`burnish.models.io.parse_device`)."""
    from burnish.models.io import parse_device

    dev = parse_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", info.local_rank if info else 0)
    return dev


def init_distributed(device: torch.device | None = None) -> DistInfo:
    """Join the torchrun process group if launched by torchrun, else return a 1-rank info."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        use_cuda = device is not None and device.type == "cuda"
        if use_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info


def shutdown_distributed() -> None:
    """Leave the process group cleanly (a barrier, then destroy); no-op when not initialised.

    Exiting with gloo's threads still alive can abort the process ("terminate called without
    an active exception"), so entry points launched by torchrun call this before exiting.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks in place (no-op on one rank)."""
    if info.enabled:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_reduce_max(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shard_by_tokens(indices: list[int], lengths: list[int], world_size: int) -> list[list[int]]:
    """Split sample indices over ranks so each gets about the same number of tokens.

    Greedy longest-first onto the least-loaded rank; deterministic, so every rank computes
    the same split without communicating.
    """
    shards: list[list[int]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for i in sorted(indices, key=lambda i: (-lengths[i], i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        shards[r].append(i)
        load[r] += lengths[i]
    return shards


def shard_model(
    model: torch.nn.Module, info: DistInfo, mp_dtype: torch.dtype | None = None
) -> bool:
    """FSDP2-shard ``model`` over the ranks (each decoder layer, then the root).

    Decoder layers are found through the model's own ``_no_split_modules`` (the HF attribute
    naming its layer classes), never by model name. ``mp_dtype`` (e.g. bf16 on GPUs) is the
    compute dtype; gradients are reduced in fp32. Returns True when the model was sharded.
    The same path runs on CPU (gloo) and GPU (NCCL).
    """
    if not info.enabled:
        return False
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=mp_dtype, reduce_dtype=torch.float32)
    for module in decoder_layers(model):
        fully_shard(module, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return True


def full_state_dicts(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Full (unsharded, CPU) model and optimizer state dicts; a collective under FSDP.

    Works the same for a plain module; optimizer states are keyed by parameter names.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    msd = get_model_state_dict(model, options=opts)
    osd = get_optimizer_state_dict(model, optimizer, options=opts) if optimizer else None
    return msd, osd


def load_full_state_dicts(
    model: torch.nn.Module,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    optim_state: dict,
) -> None:
    """Inverse of :func:`full_state_dicts` (every rank passes the full states)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, model_state, options=opts)
    set_optimizer_state_dict(model, optimizer, optim_state, options=opts)
