"""Merge configuration: mergekit-style YAML plus an ``aim:`` section, validated by pydantic.

merge_method: ties
base_model: base                      # zoo name or model directory
models:
  - model: ft-addition
    parameters: {weight: 1.0, density: 0.5}
  - model: ft-sorting
parameters: {weight: 0.5, lambda: 1.0, normalize: true, density: 0.5}   # defaults
dtype: float32
tokenizer_source: base
aim: {omega: 0.4}

Every key means what it means to mergekit 0.1.5, or is refused (ConfigError naming the file
and key) with a message saying how burnish differs: mergekit-only keys (slices, modules,
tokenizer, chat_template, out_dtype), per-tensor parameter lists (gradients, filters), a
model without a weight (mergekit has no default). Beyond mergekit: ``aim``, ``seed``,
``max_shard_size`` and ``parameters.rescale_norm``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from burnish.config import load_config
from burnish.merge.registry import MERGE_METHODS, list_methods
from burnish.models.io import parse_dtype

__all__ = [
    "AIMConfig",
    "GlobalParameters",
    "MergeConfig",
    "ModelEntry",
    "ModelParameters",
    "load_merge_config",
]


_PER_TENSOR = (
    "burnish does not support mergekit's per-tensor parameter values (a list of numbers "
    "interpolated over the layers, or {filter: ..., value: ...} entries chosen by tensor "
    "name); give one number, which burnish uses for every tensor"
)


def _scalar_only(value: Any) -> Any:
    """Refuse mergekit's gradient lists and filter entries before pydantic reads a number."""
    if isinstance(value, list | dict):
        raise PydanticCustomError("per_tensor_parameter", _PER_TENSOR)
    return value


_SHARED = "is shared by all models: set it in the top-level parameters"
_NOT_PER_MODEL = {
    "gamma": "burnish takes gamma only in the top-level parameters (one value for every "
    "model); mergekit also accepts it per model",
    "lambda": f"{_SHARED} (mergekit ignores a per-model value)",
    "normalize": f"{_SHARED} (mergekit ignores a per-model value)",
    "rescale": f"{_SHARED} (mergekit ignores a per-model value)",
    "rescale_norm": f"{_SHARED}",
    "int8_mask": f"{_SHARED} (mergekit ignores a per-model value)",
}


class ModelParameters(BaseModel):
    """Per-model parameters; unset ones take the global ``parameters`` value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float | None = Field(
        None,
        description="Weight of this model (task vector); required here or in the top-level "
        "parameters, as in mergekit.",
    )
    density: float | None = Field(
        None, gt=0, le=1, description="Fraction of this model's task-vector entries kept."
    )

    @model_validator(mode="before")
    @classmethod
    def _shared_keys_are_global(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _raise_at({(k,): msg for k, msg in _NOT_PER_MODEL.items() if k in data})
        return data

    _scalars = field_validator("*", mode="before")(_scalar_only)


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
        None,
        description="Rescale sparsified task vectors to their original L1 norm, as mergekit "
        "does; default per method (on for DARE).",
    )
    rescale_norm: Literal["l1", "density"] | None = Field(
        None,
        description="How `rescale` rescales: 'l1' (default; mergekit's only meaning) or "
        "'density' (burnish only: divide by the density, as in the DARE paper).",
    )
    weight: float | None = Field(
        None, description="Default per-model weight (no default: mergekit requires one)."
    )
    density: float = Field(1.0, gt=0, le=1, description="Default per-model density.")
    gamma: float = Field(0.01, ge=0, lt=1, description="Breadcrumbs: top fraction dropped.")
    int8_mask: bool = Field(
        False, description="Accepted for mergekit configs; changes only mergekit's mask dtype."
    )

    _scalars = field_validator("*", mode="before")(_scalar_only)

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
    chat_template: str | None = Field(
        None,
        description="Jinja chat template file for a base model without one (calibration "
        "chats are rendered with it).",
    )

    @field_validator("omega_by_module")
    @classmethod
    def _omegas_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for pattern, omega in v.items():
            if not 0 <= omega <= 1:
                raise ValueError(f"omega for {pattern!r} is {omega}; expected 0 <= omega <= 1")
        return v


_MERGEKIT_ONLY = {
    "slices": "layer slices are not supported: burnish merges whole models listed under models",
    "modules": "per-module merges are not supported: list whole models under models",
    "tokenizer": "building a tokenizer (added tokens, vocabulary union) is not supported; "
    "burnish copies one tokenizer, chosen by tokenizer_source",
    "chat_template": "not supported: burnish copies the chat template with the tokenizer",
    "out_dtype": "not supported: burnish always computes in float32 and writes the output in "
    "`dtype`; write dtype: <your out_dtype> instead",
}


class MergeConfig(BaseModel):
    """A whole merge: method, models, parameters, output dtype and tokenizer, optional AIM.

    A YAML means what it means to mergekit 0.1.5, or is refused with a message saying how
    burnish differs (mergekit-only keys, per-tensor parameter lists, a model without weight).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    merge_method: str = Field(..., description=f"One of: {', '.join(sorted(MERGE_METHODS))}.")
    base_model: str | None = Field(
        None,
        description="Base model: required by task-vector methods and by AIM; a linear merge "
        "averages it in like any other model, as mergekit does.",
    )
    models: list[ModelEntry] = Field(..., min_length=1, description="The models to merge.")
    parameters: GlobalParameters = Field(default_factory=GlobalParameters)
    dtype: str | None = Field(
        None,
        description="Output dtype (default: the inputs' dtypes). mergekit also computes in this "
        "dtype; burnish always computes in float32 and rounds once, at the end.",
    )
    tokenizer_source: str = Field(
        "base", description="'base' (base model, else first model) or a model to copy it from."
    )
    seed: int = Field(0, description="Seed of random drops (DARE), per tensor.")
    max_shard_size: int | str = Field("5GB", description="Largest output shard, e.g. 2GB.")
    aim: AIMConfig | None = Field(None, description="Apply AIM to the merge output.")

    @model_validator(mode="before")
    @classmethod
    def _no_mergekit_only_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _raise_at({(k,): msg for k, msg in _MERGEKIT_ONLY.items() if k in data})
        return data

    @field_validator("merge_method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in MERGE_METHODS:
            choices = ", ".join(list_methods())
            message = f"unknown merge method {v!r}; choose one of {choices}"
            raise PydanticCustomError("merge_config", "{message}", {"message": message})
        return v

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str | None) -> str | None:
        if v is not None:
            parse_dtype(v)  # ConfigError (a ValueError) names the choices
        return v

    @field_validator("tokenizer_source")
    @classmethod
    def _one_tokenizer(cls, v: str) -> str:
        if v == "union":
            raise PydanticCustomError(
                "merge_config",
                "'union' is not supported: burnish copies one tokenizer and never changes the "
                "vocabulary; name 'base' or a model",
            )
        return v

    @model_validator(mode="after")
    def _means_what_mergekit_means(self) -> MergeConfig:
        _raise_at(self._base_errors())
        _raise_at(self._weight_errors())
        _raise_at(self._option_errors())
        return self

    def _base_errors(self) -> dict[tuple, str]:
        if self.base_model is not None:
            if not self.merged_models():
                return {("models",): "list at least one model besides base_model"}
            return {}
        if MERGE_METHODS[self.merge_method].needs_base:
            return {
                ("base_model",): f"required by merge method {self.merge_method!r} "
                "(task vectors are differences from the base model)"
            }
        if self.aim is not None:
            return {("base_model",): "required by aim (AIM relaxes towards the base)"}
        return {}

    def _weight_errors(self) -> dict[tuple, str]:
        """mergekit requires a weight for every merged model; burnish has no default either."""
        if self.parameters.weight is not None:
            return {}
        errors: dict[tuple, str] = {}
        skip_base = MERGE_METHODS[self.merge_method].needs_base
        for i, m in enumerate(self.models):
            if m.parameters.weight is None and not (skip_base and m.model == self.base_model):
                errors[("models", i, "parameters", "weight")] = (
                    f"model {m.model!r} has no weight; mergekit requires one for every model: "
                    "set weight in its parameters, or a default weight in the top-level "
                    "parameters"
                )
        if self._base_is_averaged() and not self._base_listed():
            errors[("base_model",)] = (
                f"a linear merge averages base_model {self.base_model!r} in like any other "
                "model, as mergekit does, and it has no weight: set a top-level weight, or "
                "list it under models with its own weight (weight: 0 leaves it out of the "
                "average, e.g. when it is only there for aim)"
            )
        return errors

    def _option_errors(self) -> dict[tuple, str]:
        """Options that mergekit would turn into inf/NaN, or burnish-only ones without effect."""
        method = MERGE_METHODS[self.merge_method]
        p = self.parameters
        errors: dict[tuple, str] = {}
        normalize = method.defaults["normalize"] if p.normalize is None else p.normalize
        if method.name == "linear" and normalize and abs(sum(self.weights())) < 1e-8:
            errors[("parameters", "normalize")] = (
                "the weights sum to 0 and a linear merge divides by their sum (mergekit writes "
                "inf/NaN); set normalize: false for a plain weighted sum, or change the weights"
            )
        if p.rescale_norm is not None:
            if "rescale" not in method.options:
                errors[("parameters", "rescale_norm")] = (
                    f"merge method {method.name!r} does not sparsify, so nothing is rescaled"
                )
            elif not (method.defaults["rescale"] if p.rescale is None else p.rescale):
                errors[("parameters", "rescale_norm")] = (
                    f"has no effect: merge method {method.name!r} does not rescale unless "
                    "rescale: true"
                )
        return errors

    def _base_is_averaged(self) -> bool:
        """A linear merge with a base_model averages the base in (mergekit's behaviour)."""
        return self.base_model is not None and not MERGE_METHODS[self.merge_method].needs_base

    def _base_listed(self) -> bool:
        return any(m.model == self.base_model for m in self.models)

    def merged_models(self) -> list[ModelEntry]:
        """The models whose weights are combined, in order.

        Task-vector methods skip a listed base. A linear merge includes the base, appended
        after the listed models when it is not one of them (as mergekit does).
        """
        if MERGE_METHODS[self.merge_method].needs_base:
            return [m for m in self.models if m.model != self.base_model]
        if self._base_is_averaged() and not self._base_listed():
            return [*self.models, ModelEntry(model=str(self.base_model))]
        return list(self.models)

    def weights(self) -> list[float]:
        """One weight per merged model: its own, else the top-level default."""
        g = self.parameters.weight
        out = []
        for m in self.merged_models():
            w = g if m.parameters.weight is None else m.parameters.weight
            assert w is not None, "validation requires a weight for every merged model"
            out.append(w)
        return out

    def densities(self) -> list[float]:
        """One density per merged model: its own, else the top-level default."""
        g = self.parameters.density
        return [
            g if m.parameters.density is None else m.parameters.density
            for m in self.merged_models()
        ]


def _raise_at(errors: dict[tuple, str]) -> None:
    """Raise one pydantic error per (location, message), so ConfigError names each key."""
    if errors:
        details = [
            InitErrorDetails(
                type=PydanticCustomError("merge_config", "{message}", {"message": msg}),
                loc=loc,
                input=None,
            )
            for loc, msg in errors.items()
        ]
        raise ValidationError.from_exception_data("MergeConfig", details)


def load_merge_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> MergeConfig:
    """Read and validate a merge YAML; errors (ConfigError) name the file and the key."""
    return load_config(MergeConfig, path, overrides)
