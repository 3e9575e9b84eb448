"""Run one small DPO job; launched by test_distributed.py under torchrun or plain python.

Usage: python dist_dpo_worker.py MODEL_DIR PAIRS_JSONL OUTPUT_DIR
"""

from __future__ import annotations

import argparse

import torch

from burnish.train.config import DPOConfig
from burnish.train.distributed import shutdown_distributed
from burnish.train.dpo import run_dpo

if __name__ == "__main__":
    torch.set_num_threads(1)
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("out")
    a = p.parse_args()
    cfg = DPOConfig(
        model=a.model,
        data=a.data,
        output_dir=a.out,
        max_tokens_per_step=128,
        effective_batch_size=6,
        lr=3e-4,
        max_steps=3,
        epochs=3,
        device="cpu",
    )
    run_dpo(cfg, progress=False)
    shutdown_distributed()
