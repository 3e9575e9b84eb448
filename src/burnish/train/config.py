"""Validated training configuration, loadable from YAML and overridable from the CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from burnish.errors import BurnishError, ConfigError

__all__ = [
    "OSFTConfig",
    "SFTConfig",
    "load_config",
    "parse_overrides",
    "recommended_options",
    "with_recommended",
]

C = TypeVar("C", bound=BaseModel)


class SFTConfig(BaseModel):
    """Supervised fine-tuning with packed, padding-free batches.

    Defaults follow the SFT study (sft.md): AdamW (0.9, 0.95), no weight decay, constant LR
    without warmup, grad-norm clip 1.0, loss = mean over every loss token of the effective
    batch. The zoo-scale LR default is higher than the study's 1e-6..2e-5 for 1-8B models.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(..., description="Model directory (HF format) or zoo model name.")
    data: str = Field(..., description="Chat JSONL: one {'messages': [...]} object per line.")
    output_dir: str = Field("runs/sft", description="Where checkpoints and metrics go.")
    max_seq_len: int = Field(
        512, gt=1, description="Samples with this many tokens or more are dropped."
    )
    max_tokens_per_step: int = Field(
        4096,
        gt=0,
        description="Token slots per minibatch (forward/backward); bounds memory. Packed rows "
        "are at most min(max_seq_len, this) long; a longer sample is an error.",
    )
    effective_batch_size: int = Field(64, gt=0, description="Samples per optimizer step.")
    epochs: int = Field(1, gt=0, description="Passes over the data.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps.")
    lr: float = Field(2e-5, gt=0, description="Peak learning rate.")
    lr_scheduler: Literal["constant", "cosine", "linear"] = Field(
        "constant", description="LR after warmup: constant (default), cosine or linear decay."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps (0 = none).")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW beta2.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(1.0, ge=0, description="Max global grad norm (0 disables clipping).")
    seed: int = Field(0, description="Seed for data order and initialisation.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Parameter dtype."
    )
    mixed_precision: Literal["auto", "no", "bf16"] = Field(
        "auto", description="bf16 compute with fp32 master weights; 'auto' = bf16 on CUDA only."
    )
    device: str = Field("auto", description="'auto' (CUDA if present, else CPU), 'cpu', 'cuda'...")
    save_every_samples: int | None = Field(
        None, gt=0, description="Also write an HF checkpoint every N samples."
    )
    save_epoch_end: bool = Field(True, description="Write an HF checkpoint after each epoch.")
    save_state: bool = Field(True, description="Write a full resumable state with each checkpoint.")
    save_state_every_steps: int | None = Field(
        200,
        gt=0,
        description="Also write the resumable state every N optimizer steps, so a killed run "
        "loses at most N steps (large models: each state holds weights and optimizer).",
    )
    early_signal_steps: int = Field(
        10,
        gt=0,
        description="Steps summarised as early signals (grad norm, loss) for ranking runs.",
    )
    cache_dir: str | None = Field(
        None, description="Processed-data cache (default ~/.cache/burnish)."
    )
    allow_pickle: bool = Field(False, description="Accept pickle (.bin) checkpoints. Unsafe.")
    trust_remote_code: bool = Field(False, description="Run modelling code shipped with the model.")
    chat_template: str | None = Field(
        None,
        description="Jinja chat template file for a model whose tokenizer has none (base "
        "checkpoints); replaces the tokenizer's own if it has one.",
    )


class OSFTConfig(SFTConfig):
    """SFT plus the orthogonal-subspace constraint (every SFT key applies)."""

    rank_mode: Literal["uniform", "adaptive"] = Field(
        "uniform", description="uniform unfreeze ratio, or the paper's adaptive per-layer ranks."
    )
    unfreeze_rank_ratio: float = Field(
        0.3, description="uniform mode: share of each matrix's rank left trainable, in (0, 1)."
    )
    mrr: float = Field(0.1, description="adaptive mode: minimum retained (frozen) rank ratio.")
    trr: float = Field(0.8, description="adaptive mode: top retained (frozen) rank ratio.")
    target_patterns: list[str] | None = Field(
        None,
        description="Glob patterns of module names to constrain (default: every Linear "
        "inside the decoder layers: attention q/k/v/o and MLP gate/up/down).",
    )
    calibration_samples: int = Field(
        64, ge=0, description="adaptive mode: training samples used to measure importance."
    )
    projection: Literal["block", "two_sided"] = Field(
        "two_sided",
        description="block: keep U_h^T W V_h (the paper's projection); two_sided: also keep "
        "U_h^T W and W V_h, as the factorised reference trainer does (less forgetting).",
    )
    freeze_untargeted: bool = Field(
        False,
        description="Also freeze every parameter outside the targets (embeddings, norms, "
        "lm_head), which otherwise train fully.",
    )
    trainable_scale: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Multiplies every matrix's trainable rank share; continual learning lowers "
        "it task by task so the frozen share grows.",
    )


def recommended_options(model: str, given: set[str], cls: type[BaseModel]) -> dict[str, Any]:
    """The hyperparameters a model's card recommends (``card.json`` key ``recommended``) for
    the keys of ``cls`` not in ``given`` (the keys the user set); {} without a card."""
    import json

    from burnish.models.zoo import resolve_model

    try:
        card = resolve_model(model) / "card.json"
    except BurnishError:
        return {}
    if not card.is_file():
        return {}
    try:
        recommended = json.loads(card.read_text()).get("recommended", {})
    except (ValueError, AttributeError):
        return {}
    fields = cls.model_fields
    return {k: v for k, v in recommended.items() if k in fields and k not in given}


def with_recommended(cfg: C) -> tuple[C, dict[str, Any]]:
    """``cfg`` with its model card's recommended values for the keys the user left unset,
    and those values (to print: they are used only when the user sets none)."""
    model = getattr(cfg, "model", None)
    if model is None:
        return cfg, {}
    used = recommended_options(model, cfg.model_fields_set, type(cfg))
    if not used:
        return cfg, {}
    values = {**cfg.model_dump(exclude_unset=True), **used}
    return load_config(type(cfg), None, values), used


def _format_validation(e: ValidationError, source: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "epochs=2"]`` -> ``{"lr": 0.001, "epochs": 2}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. lr=1e-4")
        out[key.strip().replace("-", "_")] = _parse_value(value) if value else None
    return out


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _parse_value(value: str) -> Any:
    # YAML 1.1 (PyYAML) reads an unquoted 1e-3 as a string; take it as the number it means.
    if _FLOAT.fullmatch(value.strip()):
        return float(value)
    return yaml.safe_load(value)


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> C:
    """Build ``cls`` from an optional YAML file plus overrides; errors name file and key."""
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
        values.update(loaded or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source)) from None
