"""Evaluation: batched generation, task accuracy, reports and plots."""

from burnish.eval.evaluate import TaskResult, evaluate, evaluate_model, format_table
from burnish.eval.generate import generate_chat
from burnish.eval.plots import plot_loss_curve

__all__ = [
    "TaskResult",
    "evaluate",
    "evaluate_model",
    "format_table",
    "generate_chat",
    "plot_loss_curve",
]
