"""Evaluation: batched generation, task accuracy, reports and plots."""

from burnish.eval.evaluate import TaskResult, evaluate, evaluate_model, format_table
from burnish.eval.generate import generate_chat
from burnish.eval.perplexity import PerplexityResult, model_perplexity, perplexity
from burnish.eval.plots import plot_loss_curve

__all__ = [
    "PerplexityResult",
    "TaskResult",
    "evaluate",
    "evaluate_model",
    "format_table",
    "generate_chat",
    "model_perplexity",
    "perplexity",
    "plot_loss_curve",
]
