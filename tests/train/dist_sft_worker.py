"""Run one small SFT job; launched by test_distributed.py under torchrun or plain python.

Usage: python dist_sft_worker.py MODEL_DIR DATA_JSONL OUTPUT_DIR [--stop N] [--resume]

--stop N kills the run (every rank) as step N + 1 begins, after the state of step N.
"""

from __future__ import annotations

import argparse
import contextlib

import torch

import burnish.train.sft as sft_mod
from burnish.train import SFTConfig, run_sft
from burnish.train.distributed import shutdown_distributed
from burnish.train.osft import OSFT, OSFTConfig

if __name__ == "__main__":
    torch.set_num_threads(1)
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--stop", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--osft", choices=["uniform", "adaptive"], default=None)
    a = p.parse_args()
    cls = SFTConfig if a.osft is None else OSFTConfig
    extra = {} if a.osft is None else {"rank_mode": a.osft, "weight_decay": 0.1}
    cfg = cls(
        **extra,
        model=a.model,
        data=a.data,
        output_dir=a.out,
        max_seq_len=64,
        max_tokens_per_step=256,
        effective_batch_size=16,
        lr=3e-3,
        max_steps=6,
        device=a.device,
        save_epoch_end=False,
        cache_dir=f"{a.out}-cache",
    )
    method = OSFT(cfg) if a.osft else None
    if a.stop is not None:  # save every --stop steps, and die (every rank) as the next begins
        cfg = cfg.model_copy(update={"save_state_every_steps": a.stop})
        real, calls = sft_mod.train_step, []

        def dying(*args, **kwargs):
            if len(calls) == a.stop:
                raise KeyboardInterrupt
            calls.append(1)
            return real(*args, **kwargs)

        sft_mod.train_step = dying
    with contextlib.suppress(KeyboardInterrupt):  # the simulated stop: step --stop's state kept
        run_sft(cfg, progress=False, resume=a.resume, method=method)
    shutdown_distributed()
