"""Run one small SFT job; launched by test_distributed.py under torchrun or plain python.

Usage: python dist_sft_worker.py MODEL_DIR DATA_JSONL OUTPUT_DIR [--stop N] [--resume]
"""

from __future__ import annotations

import argparse

import torch

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
    run_sft(cfg, progress=False, stop_after_steps=a.stop, resume=a.resume, method=method)
    shutdown_distributed()
