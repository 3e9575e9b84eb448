"""Un-rotating and re-rotating keys and queries with the model's own rotary embedding (RoPE).

transformers applies RoPE as ``y = x * cos + rotate_half(x) * sin`` (``apply_rotary_pos_emb``)
with ``cos, sin [B, T, d]`` from the model's rotary module for the token positions. Per
position that is ``a R(theta)``: a rotation of each channel pair ``(i, i + d/2)`` scaled by the
rope type's ``attention_scaling`` ``a`` (1 for the default RoPE), so ``cos^2 + sin^2 = a^2``
and the inverse is exact: ``x = (y * cos - rotate_half(y) * sin) / (cos^2 + sin^2)``.

:class:`RopeFrame` holds the model's rotary module (found as its ``rotary_emb`` submodule, the
one the model itself calls) and gives ``cos, sin`` for any positions; layers of different
types (Gemma3's sliding and full attention) get their own frequencies through the module's
``layer_type`` argument. Nothing is recomputed outside the model's module, and nothing in
transformers is patched.

Supported: RoPE over the whole head dimension in transformers' ``rotate_half`` layout, with a
rope type whose frequencies do not depend on the sequence length (``default``, ``linear``,
``llama3``, ``yarn``). ``dynamic`` and ``longrope`` change the frequencies as the sequence
grows, so keys stored before RoPE could not be rotated back as the model rotated them; partial
rotary embeddings and models without RoPE raise ConfigError.
"""

from __future__ import annotations

import inspect

import torch
from transformers import PretrainedConfig, PreTrainedModel

from burnish.errors import ConfigError

__all__ = [
    "SUPPORTED_ROPE_TYPES",
    "RopeFrame",
    "model_positions",
    "rotate",
    "rotate_half",
    "unrotate",
]

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[-x2, x1]`` for ``x = [x1, x2]`` split in halves of the last axis (transformers')."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply RoPE: ``x * cos + rotate_half(x) * sin`` (``cos``/``sin`` broadcast against ``x``)."""
    return x * cos + rotate_half(x) * sin


def unrotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Invert :func:`rotate` exactly (up to rounding): ``(x cos - rotate_half(x) sin) / a^2``."""
    return (x * cos - rotate_half(x) * sin) / (cos * cos + sin * sin)


def model_positions(kwargs: dict[str, object], batch: int, length: int) -> torch.Tensor | None:
    """The ``position_ids`` the model used for ``length`` new tokens, as ``[batch, length]``.

    transformers' attention modules pass their keyword arguments (which carry the decoder
    layer's ``position_ids``) to ``cache.update(..., kwargs=kwargs)``; older ones pass
    ``cache_kwargs``. Returns None where the model passes no positions; raises ConfigError for
    positions of another shape (e.g. multimodal 3-D rotary positions).
    """
    sources = [kwargs, kwargs.get("kwargs"), kwargs.get("cache_kwargs")]
    found = [s["position_ids"] for s in sources if isinstance(s, dict) and "position_ids" in s]
    pos = next((p for p in found if p is not None), None)
    if pos is None:
        return None
    if not isinstance(pos, torch.Tensor) or pos.dim() != 2 or pos.shape[-1] != length:
        shape = tuple(pos.shape) if isinstance(pos, torch.Tensor) else type(pos).__name__
        raise ConfigError(
            f"pre-RoPE cache: position_ids of shape {shape} for {length} new tokens; "
            "only [batch, tokens] positions (1-D RoPE) are supported"
        )
    return pos.expand(batch, length)


def _rope_parameters(config: PretrainedConfig) -> dict[str | None, dict]:
    """``{layer_type: rope parameters}`` (key None when all layers share one RoPE)."""
    params = getattr(config, "rope_parameters", None)
    if not isinstance(params, dict) or not params:
        raise ConfigError(
            f"{type(config).__name__} has no rope_parameters: the model has no rotary position "
            "embedding, so there is nothing to quantize before; use the 'squat' cache"
        )
    types = set(getattr(config, "layer_types", None) or [])
    if types and types <= set(params) and all(isinstance(params[t], dict) for t in types):
        return {t: params[t] for t in sorted(types)}
    return {None: params}


def _check_rope(config: PretrainedConfig, params: dict[str | None, dict]) -> None:
    for layer_type, p in params.items():
        where = "" if layer_type is None else f" (layer type {layer_type!r})"
        rope_type = p.get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ConfigError(
                f"rope_parameters.rope_type {rope_type!r}{where} is not supported by the pre-RoPE "
                f"cache (supported: {', '.join(SUPPORTED_ROPE_TYPES)}): its frequencies depend on "
                "the sequence length, so stored keys could not be re-rotated as the model did"
            )
        partial = p.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0))
        if partial not in (None, 1, 1.0):
            raise ConfigError(
                f"partial_rotary_factor {partial}{where}: the pre-RoPE cache needs RoPE over the "
                "whole head dimension"
            )


class RopeFrame:
    """The model's rotary embedding as ``cos, sin`` for given positions, per layer.

    Build it with :meth:`from_model`. ``module(x, position_ids[, layer_type])`` is the model's
    own rotary module; ``layer_types[i]`` is passed for layer ``i`` when the module takes a
    ``layer_type`` (one frequency set per attention type).
    """

    def __init__(self, module: torch.nn.Module, layer_types: list[str] | None = None) -> None:
        self.module = module
        takes_type = "layer_type" in inspect.signature(module.forward).parameters
        self.layer_types = layer_types if takes_type else None

    @classmethod
    def from_model(cls, model: PreTrainedModel) -> RopeFrame:
        """The frame of ``model``'s ``rotary_emb`` module; ConfigError without (supported) RoPE."""
        config = model.config.get_text_config()
        _check_rope(config, _rope_parameters(config))
        found = [m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] == "rotary_emb"]
        if len(found) != 1:
            raise ConfigError(
                f"{type(model).__name__}: expected one rotary embedding module (rotary_emb), "
                f"found {len(found)}; the pre-RoPE cache reads cos/sin from it"
            )
        return cls(found[0], getattr(config, "layer_types", None))

    def cos_sin(self, positions: torch.Tensor, layer_idx: int) -> tuple[torch.Tensor, ...]:
        """``cos, sin [B, T, d]`` (float32) for integer ``positions [B, T]`` of ``layer_idx``."""
        device = positions.device
        x = torch.empty(0, dtype=torch.float32, device=device)  # only its dtype/device are read
        extra = () if self.layer_types is None else (self.layer_types[layer_idx],)
        with torch.no_grad():
            cos, sin = self.module(x, positions, *extra)
        return cos.float().to(device), sin.float().to(device)
