"""Merge configuration: mergekit-style YAML plus an ``aim:`` section, validated by pydantic.

merge_method: ties
base_model: base                      # zoo name or model directory
models:
  - model: ft-addition
    parameters: {weight: 1.0, density: 0.5}
  - model: ft-sorting
parameters: {lambda: 1.0, normalize: true, density: 0.5}   # defaults for every model
dtype: float32
tokenizer_source: base
aim: {omega: 0.4}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from burnish.merge.registry import MERGE_METHODS, list_methods
from burnish.models.io import parse_dtype
from burnish.train.config import load_config

__all__ = [
    "AIMConfig",
    "GlobalParameters",
    "MergeConfig",
    "ModelEntry",
    "ModelParameters",
    "load_merge_config",
]


class ModelParameters(BaseModel):
    """Per-model parameters; unset ones take the global ``parameters`` value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float | None = Field(None, description="Weight of this model (task vector).")
    density: float | None = Field(
        None, gt=0, le=1, description="Fraction of this model's task-vector entries kept."
    )


class ModelEntry(BaseModel):
    """One input model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(..., description="Model directory or zoo name.")
    parameters: ModelParameters = Field(default_factory=ModelParameters)


class GlobalParameters(BaseModel):
    """Parameters shared by all models, with mergekit's names and meanings."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    lambda_: float = Field(1.0, alias="lambda", description="Scale of the merged task vector.")
    normalize: bool | None = Field(
        None, description="Divide by the sum of (agreeing) weights; default per method."
    )
    rescale: bool | None = Field(
        None, description="Rescale sparsified task vectors; default per method (on for DARE)."
    )
    rescale_norm: Literal["density", "l1"] = Field(
        "density", description="Rescale by 1/density (DARE paper) or to the original L1 norm."
    )
    weight: float = Field(1.0, description="Default per-model weight.")
    density: float = Field(1.0, gt=0, le=1, description="Default per-model density.")
    gamma: float = Field(0.01, ge=0, lt=1, description="Breadcrumbs: top fraction dropped.")

    def method_options(self) -> dict[str, Any]:
        """Options for :func:`burnish.merge.registry.call_method`."""
        return {
            "lam": self.lambda_,
            "normalize": self.normalize,
            "rescale": self.rescale,
            "rescale_norm": self.rescale_norm,
            "gamma": self.gamma,
        }


class AIMConfig(BaseModel):
    """Activation-informed merging applied to the merge output (aim.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    omega: float = Field(
        0.4, ge=0, le=1, description="1 = plain merge; 0 = busiest channel = base."
    )
    omega_by_module: dict[str, float] = Field(
        default_factory=dict,
        description="Glob pattern over module names -> omega; the first match wins.",
    )
    data: str | None = Field(
        None, description="Calibration text file or JSONL (default: the zoo's task mixture)."
    )
    stats: str | None = Field(
        None, description="Statistics file: used if it matches, else computed and written here."
    )
    max_texts: int = Field(256, gt=0, description="Calibration blocks at most.")
    block_size: int = Field(512, gt=1, description="Tokens per calibration block.")
    batch_size: int = Field(8, gt=0, description="Blocks per forward pass.")

    @field_validator("omega_by_module")
    @classmethod
    def _omegas_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for pattern, omega in v.items():
            if not 0 <= omega <= 1:
                raise ValueError(f"omega for {pattern!r} is {omega}; expected 0 <= omega <= 1")
        return v


class MergeConfig(BaseModel):
    """A whole merge: method, models, parameters, output dtype and tokenizer, optional AIM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    merge_method: str = Field(..., description=f"One of: {', '.join(sorted(MERGE_METHODS))}.")
    base_model: str | None = Field(
        None, description="Base model (required by task-vector methods and by AIM)."
    )
    models: list[ModelEntry] = Field(..., min_length=1, description="The models to merge.")
    parameters: GlobalParameters = Field(default_factory=GlobalParameters)
    dtype: str | None = Field(None, description="Output dtype (default: the inputs' dtypes).")
    tokenizer_source: str = Field(
        "base", description="'base' (base model, else first model) or a model to copy it from."
    )
    seed: int = Field(0, description="Seed of random drops (DARE), per tensor.")
    max_shard_size: int | str = Field("5GB", description="Largest output shard, e.g. 2GB.")
    aim: AIMConfig | None = Field(None, description="Apply AIM to the merge output.")

    @field_validator("merge_method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in MERGE_METHODS:
            raise ValueError(
                f"unknown merge method {v!r}; choose one of {', '.join(list_methods())}"
            )
        return v

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str | None) -> str | None:
        if v is not None:
            parse_dtype(v)  # ConfigError (a ValueError) names the choices
        return v

    @model_validator(mode="after")
    def _base_when_needed(self) -> MergeConfig:
        if self.base_model is None and MERGE_METHODS[self.merge_method].needs_base:
            raise ValueError(
                f"base_model is required by merge method {self.merge_method!r} "
                "(task vectors are differences from the base model)"
            )
        if self.base_model is None and self.aim is not None:
            raise ValueError("base_model is required by aim (AIM relaxes towards the base)")
        if not self.merged_models():
            raise ValueError("models: list at least one model besides base_model")
        return self

    def merged_models(self) -> list[ModelEntry]:
        """The models whose weights are combined (a listed base is skipped for task vectors)."""
        if not MERGE_METHODS[self.merge_method].needs_base:
            return list(self.models)
        return [m for m in self.models if m.model != self.base_model]

    def weights(self) -> list[float]:
        g = self.parameters.weight
        return [
            g if m.parameters.weight is None else m.parameters.weight for m in self.merged_models()
        ]

    def densities(self) -> list[float]:
        g = self.parameters.density
        return [
            g if m.parameters.density is None else m.parameters.density
            for m in self.merged_models()
        ]


def load_merge_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> MergeConfig:
    """Read and validate a merge YAML; errors (ConfigError) name the file and the key."""
    return load_config(MergeConfig, path, overrides)
