"""OSFT / adaptive SVD: full fine-tuning confined to the complement of a frozen subspace.

For every targeted weight W = U S V^T (fp32 SVD, once per task) the top-r singular
directions (U_h, V_h) are frozen: the accumulated update dW must satisfy U_h^T dW V_h = 0, so
what earlier tasks rely on most is left untouched (osft.md).

Formulation, chosen for speed: the weights stay dense and trainable. After the backward pass
each gradient is projected (a few extra O(n m r) products per matrix), and after every
optimizer step the weight is corrected back onto the constraint, which undoes what AdamW's
element-wise rescaling and weight decay leak into the frozen subspace. Two projections:
"block" (the paper's G <- G - U_h (U_h^T G V_h) V_h^T, keeping U_h^T W V_h) and "two_sided"
(the default: (I - U_h U_h^T) G (I - V_h V_h^T), keeping U_h^T W and W V_h, which is what the
reference trainer's factorisation enforces). On the zoo's continual benchmark the block
projection still forgot most earlier tasks, the two-sided one far less.

The reference trainer's factorised re-parametrisation (W = U_h S_h V_h^T + U_l S_l V_l^T)
doubles linear FLOPs in the forward and backward passes instead; benchmarks/osft_overhead.py
measures both against plain SFT.

Rank modes: "uniform" freezes r = floor(min(n, m) * (1 - unfreeze_rank_ratio)) everywhere;
"adaptive" (the paper's) retains a per-layer fraction mrr + I(l) (trr - mrr), where I(l) is the
layer's mean input/output cosine similarity on calibration data, min-max normalised over
layers.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from burnish.data.dataset import TokenizedDataset
from burnish.data.packing import collate_packed, plan_minibatches
from burnish.errors import ConfigError
from burnish.models.skipping import decoder_layers as find_decoder_layers
from burnish.train.config import OSFTConfig

__all__ = [
    "OSFT",
    "OSFTConfig",
    "adaptive_fractions",
    "decoder_layers",
    "find_targets",
    "frozen_basis",
    "layer_importance",
    "project_gradient",
    "restore_frozen_",
]


# --- the maths: pure tensor functions ------------------------------------------------------


def adaptive_fractions(importance: torch.Tensor, mrr: float, trr: float) -> torch.Tensor:
    """Retained (frozen) fraction per layer: mrr + I (trr - mrr), I min-max normalised.

    importance: [L] raw per-layer scores (mean input/output cosine similarity). With all
    scores equal there is nothing to rank, and every layer keeps trr.
    """
    if not 0.0 <= mrr <= trr < 1.0:
        raise ConfigError(f"need 0 <= mrr <= trr < 1, got mrr={mrr}, trr={trr}")
    lo, hi = importance.min(), importance.max()
    norm = torch.ones_like(importance) if hi - lo < 1e-12 else (importance - lo) / (hi - lo)
    return mrr + norm * (trr - mrr)


def frozen_basis(
    weight: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-``rank`` singular triplets of ``weight`` [n, m] (fp32).

    Returns U_h [n, r], S_h [r], V_h [m, r].
    """
    U, S, Vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    return U[:, :rank].contiguous(), S[:rank].contiguous(), Vh[:rank].T.contiguous()


def project_gradient(
    grad: torch.Tensor, U_h: torch.Tensor, V_h: torch.Tensor, two_sided: bool = False
) -> torch.Tensor:
    """Remove the gradient's component in the frozen subspace.

    block (the paper's formula): G - U_h (U_h^T G V_h) V_h^T, so U_h^T dW V_h = 0.
    two_sided: (I - U_h U_h^T) G (I - V_h V_h^T), so U_h^T dW = 0 and dW V_h = 0 as well:
    what the factorised reference trainer enforces (its U_l, V_l stay orthogonal to U_h, V_h).
    """
    if two_sided:
        left = grad - U_h @ (U_h.T @ grad)  # [n, m]
        return left - (left @ V_h) @ V_h.T
    core = U_h.T @ grad @ V_h  # [r, r]
    return grad - U_h @ core @ V_h.T


@torch.no_grad()
def restore_frozen_(
    weight: torch.Tensor,
    U_h: torch.Tensor,
    S_h: torch.Tensor,
    V_h: torch.Tensor,
    two_sided: bool = False,
) -> None:
    """Put W back on the constraint in place (W_0 = U_h S_h V_h^T + rest need not be stored).

    block: W <- W - U_h (U_h^T W V_h - diag(S_h)) V_h^T, so U_h^T (W - W_0) V_h = 0.
    two_sided: W <- (I - U_h U_h^T) W (I - V_h V_h^T) + U_h diag(S_h) V_h^T, so
    U_h^T (W - W_0) = 0 and (W - W_0) V_h = 0.
    """
    w = weight.float()
    if two_sided:
        fixed = project_gradient(w, U_h, V_h, two_sided=True) + (U_h * S_h) @ V_h.T
    else:
        drift = U_h.T @ w @ V_h - torch.diag(S_h)  # [r, r]
        fixed = w - U_h @ drift @ V_h.T
    weight.copy_(fixed.to(weight.dtype))


# --- finding what to constrain ---------------------------------------------------------------


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers (:func:`burnish.models.skipping.decoder_layers`); ConfigError if none."""
    layers = find_decoder_layers(model)
    if not layers:
        raise ConfigError(f"{type(model).__name__}: cannot find decoder layers")
    return layers


def find_targets(model: nn.Module, patterns: list[str] | None = None) -> dict[str, nn.Linear]:
    """Linear layers to constrain: by default every Linear inside a decoder layer.

    ``patterns`` (globs over module names, e.g. ``"*.self_attn.q_proj"``) replace the default;
    a pattern that matches no Linear is an error naming it.
    """
    inside: set[int] = set()
    for layer in decoder_layers(model):
        inside |= {id(m) for m in layer.modules() if isinstance(m, nn.Linear)}
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    if patterns is None:
        return {n: m for n, m in linears.items() if id(m) in inside}
    chosen: dict[str, nn.Linear] = {}
    for pat in patterns:
        hits = {n: m for n, m in linears.items() if fnmatch.fnmatchcase(n, pat)}
        if not hits:
            raise ConfigError(
                f"target pattern {pat!r} matches no Linear module (e.g. "
                f"{next(iter(linears), '?')!r})"
            )
        chosen.update(hits)
    return chosen


@torch.no_grad()
def layer_importance(model: nn.Module, data: TokenizedDataset, n_samples: int) -> torch.Tensor:
    """[L] mean cosine similarity between each decoder layer's input and output tokens.

    Runs the first ``n_samples`` training sequences through the model as one packed batch
    (so no padding token counts).
    """
    n = min(n_samples, len(data))
    if n == 0:
        raise ConfigError("adaptive ranks need calibration data, but the calibration set is empty")
    layers = decoder_layers(model)
    sums = torch.zeros(len(layers), dtype=torch.float64)
    count = 0
    mask: list[torch.Tensor] = []

    def hook(i: int):
        def fn(module, args, kwargs, output):
            x = args[0] if args else kwargs["hidden_states"]
            y = output[0] if isinstance(output, tuple) else output
            cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1)  # [R, L]
            sums[i] += cos[mask[0]].double().sum().cpu()

        return fn

    handles = [m.register_forward_hook(hook(i), with_kwargs=True) for i, m in enumerate(layers)]
    param = next(model.parameters())
    lengths = data.lengths()[:n]
    try:
        for rows in plan_minibatches(lengths, max(lengths), 8 * max(lengths)):
            b = collate_packed(rows, data.input_ids, data.labels, 0, param.dtype).to(param.device)
            used = torch.tensor([sum(lengths[i] for i in row) for row in rows])  # [R]
            real = torch.arange(b.input_ids.shape[1])[None] < used[:, None]  # [R, L]
            mask[:] = [real.to(param.device)]
            model(
                input_ids=b.input_ids, position_ids=b.position_ids, attention_mask=b.attention_mask
            )
            count += int(real.sum())
    finally:
        for h in handles:
            h.remove()
    return (sums / count).float()


# --- the method shell ------------------------------------------------------------------------


@dataclass
class _Target:
    name: str
    param: nn.Parameter
    U_h: torch.Tensor
    S_h: torch.Tensor
    V_h: torch.Tensor


@dataclass
class OSFT:
    """Hooks that turn the SFT recipe into OSFT (see ``burnish.train.sft.run_sft(method=)``).

    ``setup`` decomposes the targets once (fp32); ``after_backward`` projects gradients;
    ``after_step`` restores the frozen component after each optimizer step. Full weights are
    needed on every rank, so OSFT runs data-parallel without FSDP sharding.
    """

    cfg: OSFTConfig
    targets: list[_Target] = field(default_factory=list)
    ranks: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (frozen, full)
    supports_sharding: bool = False
    name: str = "osft"

    @property
    def two_sided(self) -> bool:
        return self.cfg.projection == "two_sided"

    def __post_init__(self) -> None:
        u = self.cfg.unfreeze_rank_ratio
        if self.cfg.rank_mode == "uniform" and not 0.0 < u < 1.0:
            raise ConfigError(f"unfreeze_rank_ratio must be in (0, 1), got {u} (typical 0.25-0.35)")
        if self.cfg.rank_mode == "adaptive" and not 0.0 <= self.cfg.mrr <= self.cfg.trr < 1.0:
            raise ConfigError(
                f"need 0 <= mrr <= trr < 1, got mrr={self.cfg.mrr}, trr={self.cfg.trr}"
            )

    def setup(self, model: nn.Module, data: TokenizedDataset) -> None:
        """Choose ranks and take the SVD of every target (deterministic for given weights)."""
        modules = find_targets(model, self.cfg.target_patterns)
        fractions = self._layer_fractions(model, data)
        owner = self._layer_of(model)
        for name, mod in modules.items():
            n, m = mod.weight.shape
            if self.cfg.rank_mode == "uniform":
                frac = 1.0 - self.cfg.unfreeze_rank_ratio
            else:
                frac = float(fractions[owner[name]]) if name in owner else self.cfg.trr
            frac = 1.0 - (1.0 - frac) * self.cfg.trainable_scale
            r = math.floor(min(n, m) * frac)
            U_h, S_h, V_h = frozen_basis(mod.weight, r)
            self.targets.append(_Target(name, mod.weight, U_h, S_h, V_h))
            self.ranks[name] = (r, min(n, m))
        if self.cfg.freeze_untargeted:
            keep = {id(t.param) for t in self.targets}
            for p in model.parameters():
                p.requires_grad_(id(p) in keep)

    def _layer_fractions(self, model: nn.Module, data: TokenizedDataset) -> torch.Tensor | None:
        if self.cfg.rank_mode == "uniform":
            return None
        importance = layer_importance(model, data, self.cfg.calibration_samples)
        return adaptive_fractions(importance, self.cfg.mrr, self.cfg.trr)

    @staticmethod
    def _layer_of(model: nn.Module) -> dict[str, int]:
        """Module name -> index of the decoder layer that contains it."""
        ids = {id(layer): i for i, layer in enumerate(decoder_layers(model))}
        owner: dict[str, int] = {}
        for lname, layer in model.named_modules():
            if id(layer) in ids:
                for sub, _ in layer.named_modules():
                    owner[f"{lname}.{sub}" if sub else lname] = ids[id(layer)]
        return owner

    @torch.no_grad()
    def after_backward(self) -> None:
        for t in self.targets:
            if t.param.grad is not None:
                g = project_gradient(t.param.grad.float(), t.U_h, t.V_h, self.two_sided)
                t.param.grad.copy_(g.to(t.param.grad.dtype))

    def after_step(self) -> None:
        for t in self.targets:
            restore_frozen_(t.param.data, t.U_h, t.S_h, t.V_h, self.two_sided)

    def frozen_share(self) -> float:
        """Frozen rank over total rank, across all targets."""
        frozen = sum(r for r, _ in self.ranks.values())
        return frozen / max(1, sum(full for _, full in self.ranks.values()))
