"""Seeded randomness that leaves everyone else's alone.

Library code that has to draw from torch's global RNG (``generate``'s sampling, dropout,
``nn.Module`` initialisation) does it inside :func:`seeded`, which forks the RNG state and
restores it afterwards; everything else takes a ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with torch's global RNG (and ``device``'s, if CUDA) seeded to ``seed``,
    restoring the previous states afterwards: for library code that must use the global RNG
    (``generate``, dropout) without changing anyone else's randomness."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
