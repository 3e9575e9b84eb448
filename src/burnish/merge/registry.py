"""The registry of merge methods: one keyword entry per method, declared once.

An entry says what the method is made of (for the task-vector family: which sparsifier, and
whether signs are elected) and which options it takes with their defaults (mergekit 0.1.5's).
That one declaration is what the merge calls (:meth:`MergeMethod.__call__`), what YAML
validation checks options against, and what help texts list. The maths is in
:func:`burnish.merge.task_vectors.merge_task_vectors` and :func:`burnish.merge.linear.linear`.
Importing this module costs no torch.

Sources, as mergekit defines them: task arithmetic (Ilharco et al., 2023), TIES (Yadav et
al., 2023, arXiv 2306.01708: magnitude trim, sign election, mean of the agreeing entries),
DARE (Yu et al., 2024, arXiv 2311.03099: random drop, survivors rescaled), breadcrumbs
(Davari & Belilovsky, 2023, arXiv 2312.06795: drop the ``gamma`` largest and the smallest
entries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from burnish.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "MERGE_METHODS",
    "MergeMethod",
    "breadcrumbs",
    "breadcrumbs_ties",
    "call_method",
    "dare_linear",
    "dare_ties",
    "get_method",
    "list_methods",
    "task_arithmetic",
    "ties",
]


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method.

    Attributes:
        name: the ``merge_method`` value in a config.
        summary: one line for help texts.
        defaults: the options it takes (among lam, normalize, rescale, rescale_norm, gamma)
            and their defaults.
        task_vectors: combines task vectors ``W_i - W_0`` (needs ``base_model``); False for
            the plain weighted average.
        sparsifier: "magnitude" (TIES trim), "random" (DARE drop, seeded per tensor),
            "outliers" (breadcrumbs) or None; a sparsifier takes per-model densities.
        consensus: elect a sign per entry and combine only the agreeing entries (TIES).
    """

    name: str
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    task_vectors: bool = True
    sparsifier: str | None = None
    consensus: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def needs_base(self) -> bool:
        return self.task_vectors

    @property
    def uses_density(self) -> bool:
        return self.sparsifier is not None

    @property
    def seeded(self) -> bool:
        return self.sparsifier == "random"

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.defaults)

    def __call__(
        self,
        base: Tensor | None,
        models: Sequence[Tensor],
        weights: Sequence[float],
        densities: Sequence[float] | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """Merge one tensor name's inputs (each of shape S; returns float32 of shape S).

        ``options`` must be among :attr:`options`; the others take :attr:`defaults`.
        ``base`` is ignored by the plain average; ``generator`` seeds a random drop.
        """
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ConfigError(f"merge method {self.name!r} takes no option {unknown[0]!r}")
        opts = {**self.defaults, **options}
        if not self.task_vectors:
            from burnish.merge.linear import linear as weighted_average

            return weighted_average(models, weights, **opts)
        from burnish.merge.task_vectors import merge_task_vectors

        if base is None:
            raise ConfigError(f"merge method {self.name!r} needs the base model's tensor")
        return merge_task_vectors(
            base,
            models,
            weights,
            densities if densities is not None else [1.0] * len(models),
            sparsifier=self.sparsifier,
            consensus=self.consensus,
            generator=generator if self.seeded else None,
            **opts,
        )


# Options shared by the sparsifying methods, with mergekit's defaults.
_SPARSE = {"lam": 1.0, "normalize": False, "rescale": False, "rescale_norm": "l1"}
_DARE = {**_SPARSE, "rescale": True}  # DARE rescales survivors by default
_CRUMBS = {**_SPARSE, "gamma": 0.01}

task_arithmetic = MergeMethod(
    "task_arithmetic",
    "base + lambda * weighted sum of task vectors",
    {"lam": 1.0, "normalize": False},
)
ties = MergeMethod(
    "ties",
    "magnitude trim + sign election + mean of the agreeing entries",
    {**_SPARSE, "normalize": True},
    sparsifier="magnitude",
    consensus=True,
)
dare_linear = MergeMethod(
    "dare_linear", "random drop + rescale + weighted sum", _DARE, sparsifier="random"
)
dare_ties = MergeMethod(
    "dare_ties",
    "random drop + rescale + sign election",
    _DARE,
    sparsifier="random",
    consensus=True,
)
breadcrumbs = MergeMethod(
    "breadcrumbs",
    "drop the largest (gamma) and smallest entries + weighted sum",
    _CRUMBS,
    sparsifier="outliers",
)
breadcrumbs_ties = MergeMethod(
    "breadcrumbs_ties",
    "breadcrumbs + sign election",
    _CRUMBS,
    sparsifier="outliers",
    consensus=True,
)

MERGE_METHODS: dict[str, MergeMethod] = {
    m.name: m
    for m in (
        MergeMethod(
            "linear", "weighted average (model soup)", {"normalize": True}, task_vectors=False
        ),
        task_arithmetic,
        ties,
        dare_linear,
        dare_ties,
        breadcrumbs,
        breadcrumbs_ties,
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


def call_method(
    method: MergeMethod,
    base: Tensor | None,
    models: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    options: Mapping[str, Any],
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run ``method`` on one tensor name's inputs with the config's shared ``options``: those
    it does not take are ignored, and ``None`` means "the method's default"."""
    kwargs = {k: v for k, v in options.items() if k in method.defaults and v is not None}
    return method(base, models, weights, densities, generator=generator, **kwargs)
