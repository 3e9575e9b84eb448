"""The explicit registry of merge methods: name -> tensor function plus what it needs.

Every method is a pure function over tensors. :func:`call_method` gives each one only the
arguments and options it takes, so the streaming merge treats them all alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from burnish.errors import ConfigError
from burnish.merge.breadcrumbs import breadcrumbs
from burnish.merge.breadcrumbs_ties import breadcrumbs_ties
from burnish.merge.dare_linear import dare_linear
from burnish.merge.dare_ties import dare_ties
from burnish.merge.linear import linear
from burnish.merge.task_arithmetic import task_arithmetic
from burnish.merge.ties import ties

__all__ = [
    "MERGE_METHODS",
    "MergeMethod",
    "call_method",
    "get_method",
    "list_methods",
    "option_default",
]


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method.

    Attributes:
        name: the ``merge_method`` value in a config.
        fn: the tensor function.
        needs_base: takes ``base`` first (task-vector methods); a config must name base_model.
        uses_density: takes per-model ``densities`` after ``weights``.
        options: keyword options it accepts among lam, normalize, rescale, rescale_norm, gamma.
        seeded: takes a ``generator`` (random drop); seeded per tensor by the merge.
        summary: one line for help texts.
    """

    name: str
    fn: Callable[..., Tensor]
    needs_base: bool
    uses_density: bool
    options: tuple[str, ...]
    seeded: bool
    summary: str


_SPARSE = ("lam", "normalize", "rescale", "rescale_norm")

MERGE_METHODS: dict[str, MergeMethod] = {
    m.name: m
    for m in (
        MergeMethod(
            "linear", linear, False, False, ("normalize",), False, "weighted average (model soup)"
        ),
        MergeMethod(
            "task_arithmetic",
            task_arithmetic,
            True,
            False,
            ("lam", "normalize"),
            False,
            "base + lambda * weighted sum of task vectors",
        ),
        MergeMethod(
            "ties", ties, True, True, _SPARSE, False, "magnitude trim + sign election + mean"
        ),
        MergeMethod(
            "dare_linear", dare_linear, True, True, _SPARSE, True, "random drop + rescale + sum"
        ),
        MergeMethod(
            "dare_ties", dare_ties, True, True, _SPARSE, True, "random drop + sign election"
        ),
        MergeMethod(
            "breadcrumbs",
            breadcrumbs,
            True,
            True,
            (*_SPARSE, "gamma"),
            False,
            "drop largest (gamma) and smallest entries + sum",
        ),
        MergeMethod(
            "breadcrumbs_ties",
            breadcrumbs_ties,
            True,
            True,
            (*_SPARSE, "gamma"),
            False,
            "breadcrumbs + sign election",
        ),
    )
}


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    return sorted(MERGE_METHODS)


def get_method(name: str) -> MergeMethod:
    """The registered method ``name``; ConfigError listing the known ones otherwise."""
    if name not in MERGE_METHODS:
        raise ConfigError(
            f"unknown merge method {name!r}; choose one of {', '.join(list_methods())}"
        )
    return MERGE_METHODS[name]


def option_default(method: MergeMethod, option: str) -> Any:
    """The default of keyword ``option`` of ``method.fn`` (e.g. whether TIES normalizes)."""
    return inspect.signature(method.fn).parameters[option].default


def call_method(
    method: MergeMethod,
    base: Tensor | None,
    models: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    options: Mapping[str, Any],
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run ``method`` on one tensor name's inputs; options it does not take are ignored.

    ``None`` options mean "the method's default". Returns float32 of the inputs' shape.
    """
    kwargs = {k: v for k, v in options.items() if k in method.options and v is not None}
    if method.seeded:
        kwargs["generator"] = generator
    args: list[Any] = [base] if method.needs_base else []
    args += [models, weights]
    if method.uses_density:
        args.append(densities)
    return method.fn(*args, **kwargs)
