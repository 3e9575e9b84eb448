"""Folding the scales into the weights: a stock HF checkpoint with the same outputs.

Pre-norm layers normalise before each block, and RMSNorm ignores a positive scale of its input
(up to its epsilon). So if the stock model's hidden state is ``c`` times the scaled model's,
with ``c1 = c / s_att`` and ``c2 = c1 / s_mlp``::

    stock x1 = c x + Attn'(Norm(x)) = c1 (b_att Attn + s_att x)   with Attn' = c1 b_att Attn
    stock out = c1 x1 + MLP'(Norm(x1)) = c2 (b_mlp MLP + s_mlp x1)  with MLP' = c2 b_mlp MLP

and the final norm removes ``c`` again. ``Attn'`` and ``MLP'`` scale o_proj and down_proj
(Gemma3: the post-attention / post-feedforward norm weights, which come after o_proj /
down_proj). A skipped block becomes a zero o_proj (or down_proj): the stock model still
computes that attention and stores its KV, it only adds nothing; the savings need the
hopscotch checkpoint. Every cumulative factor must stay positive (RMSNorm(-x) = -RMSNorm(x)).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from burnish.errors import ConfigError
from burnish.models.skipping import ScaledLayer, scaled_layers, unwrap_scaled

__all__ = ["fold_scales"]


@torch.no_grad()
def fold_scales(model: PreTrainedModel) -> PreTrainedModel:
    """Fold a wrapped model's scales and skips into its weights and unwrap it (in place)."""
    c = 1.0
    for i, layer in enumerate(scaled_layers(model)):
        b_att, s_att, b_mlp, s_mlp = (float(v) for v in layer.scales)
        c1 = c / s_att
        c2 = c1 / s_mlp
        if c1 <= 0 or c2 <= 0:
            raise ConfigError(
                f"layer {i}: residual scales s_att={s_att:.4g}, s_mlp={s_mlp:.4g} make the "
                "hidden state change sign, which RMSNorm does not ignore; this model cannot "
                "be exported plain (keep the hopscotch checkpoint)"
            )
        _scale_block(layer, "attention", 0.0 if layer.skip_attention else c1 * b_att)
        _scale_block(layer, "mlp", 0.0 if layer.skip_mlp else c2 * b_mlp)
        c = c2
    return unwrap_scaled(model)


def _scale_block(layer: ScaledLayer, block: str, factor: float) -> None:
    """Multiply the block's output by ``factor`` through its last weight."""
    if layer.sandwich:
        norm = (
            layer.post_attention_layernorm
            if block == "attention"
            else layer.post_feedforward_layernorm
        )
        _scale_norm(norm, factor)
        return
    linear = layer.self_attn.o_proj if block == "attention" else layer.mlp.down_proj
    if not isinstance(linear, nn.Linear):
        raise ConfigError(f"{type(layer.original).__name__}: no o_proj / down_proj to fold into")
    linear.weight.mul_(factor)
    if linear.bias is not None:
        linear.bias.mul_(factor)


def _scale_norm(norm: nn.Module, factor: float) -> None:
    """Scale an RMSNorm's output: Gemma's norms multiply by (1 + weight), others by weight."""
    w = norm.weight
    if "Gemma" in type(norm).__name__:
        w.copy_((factor * (1.0 + w.float()) - 1.0).to(w.dtype))
    else:
        w.mul_(factor)
