"""Figures people would rather see than read (written as PNG, headless)."""

from __future__ import annotations

from pathlib import Path

from burnish.io import atomic_file

__all__ = ["plot_loss_curve"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curve(rows: list[dict], path: str | Path, title: str = "training loss") -> Path:
    """Loss (and grad norm on a second axis) against optimizer step."""
    plt = _pyplot()
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(steps, [r["loss"] for r in rows], color="tab:blue", label="loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (per-token mean)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(steps, [r["grad_norm"] for r in rows], color="tab:orange", alpha=0.6)
    ax2.set_ylabel("grad norm", color="tab:orange")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
