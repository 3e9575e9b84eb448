"""Validated training configurations (SFT, OSFT, DPO), how ``burnish phases`` scores its
checkpoints, and the model-card recommendations.

Loaded from YAML with overrides by :func:`burnish.config.load_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from burnish.config import load_config
from burnish.errors import BurnishError

__all__ = [
    "DPOConfig",
    "OSFTConfig",
    "PhaseEval",
    "SFTConfig",
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


class DPOConfig(SFTConfig):
    """Preference tuning on the SFT machinery (every SFT key applies; ``data`` is preference
    JSONL, ``effective_batch_size`` counts pairs). TRL's defaults: beta 0.1, sigmoid loss."""

    data: str = Field(..., description="Preference JSONL: prompt, chosen, rejected per line.")
    output_dir: str = Field("runs/dpo", description="Where checkpoints and metrics go.")
    loss: Literal["sigmoid", "ipo", "hinge", "simpo"] = Field(
        "sigmoid", description="sigmoid (DPO), ipo, hinge, or simpo (reference-free)."
    )
    beta: float = Field(0.1, gt=0, description="DPO's beta (SimPO: its beta, e.g. 2.0).")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="sigmoid loss: assumed share of flipped labels."
    )
    simpo_gamma: float = Field(0.5, ge=0, description="SimPO's target margin gamma.")
    sft_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of an SFT term, the per-token NLL of the chosen responses, added "
        "to the preference loss (RPO; TRL: loss_type [..., 'sft'] with loss_weights).",
    )
    reference: str | None = Field(
        None,
        description="Reference model (default: the starting model); its log-probs are "
        "computed once and cached in the run folder.",
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


@dataclass(frozen=True)
class PhaseEval:
    """How a phase's checkpoints are scored (higher is better): mean greedy accuracy on
    ``problems`` test problems of each of ``tasks``, or, without tasks, minus the loss on a
    ``holdout`` share of the phase's rows (chosen by a hash of the row, never trained on)."""

    tasks: tuple[str, ...] = ()
    problems: int = 64
    holdout: float = 0.1

    def metric(self) -> str:
        return f"mean accuracy on {', '.join(self.tasks)}" if self.tasks else "-held-out loss"
