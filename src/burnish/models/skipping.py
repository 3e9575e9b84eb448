"""Scaled, skippable decoder layers: the model structure Hopscotch trains and saves.

Each decoder layer gets four scalars, ``scales = [b_att, s_att, b_mlp, s_mlp]`` (all 1 at
first)::

    x1  = b_att * Attn(Norm(x)) + s_att * x
    out = b_mlp * MLP(Norm(x1)) + s_mlp * x1

(Gemma3's sandwich layers: the post-attention / post-feedforward norms are part of Attn / MLP.)
A skipped attention block is not computed (``x1 = s_att * x``) and holds no KV: its slot in
the cache becomes transformers' ``DummyLayer``, which stores nothing and which the cache's
length and mask lookups pass over, so ``generate(use_cache=True)`` keeps working with the
stock caches and burnish's quantized ones. ``skip_mlp`` does the same for the MLP (ShortGPT
removes whole layers).

Wrapping is reversible and patches nothing: :func:`wrap_scaled` swaps each layer in the
model's ``ModuleList`` for a :class:`ScaledLayer` that adopts the original's submodules under
their own names (so weight names, and state dicts, are unchanged), :func:`unwrap_scaled` puts
the original layer objects back. A checkpoint keeps stock weights plus ``hopscotch.json``
(:class:`SkipConfig`): :func:`burnish.models.load_model` applies it, ``save_model`` writes it.
"""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DummyLayer
from transformers.modeling_layers import GradientCheckpointingLayer

from burnish.errors import ConfigError

__all__ = [
    "SKIP_CONFIG_FILE",
    "ScaledLayer",
    "SkipConfig",
    "apply_skip_config",
    "current_skip_config",
    "decoder_layer_list",
    "decoder_layers",
    "is_scaled",
    "plain_state_dict",
    "read_skip_config",
    "record_selection",
    "scaled_layers",
    "unwrap_scaled",
    "wrap_scaled",
]

SKIP_CONFIG_FILE = "hopscotch.json"
SCALE_NAMES = ("b_att", "s_att", "b_mlp", "s_mlp")
_PRE_NORM = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
_SANDWICH = (*_PRE_NORM, "pre_feedforward_layernorm", "post_feedforward_layernorm")
# how each wrapped model's blocks were chosen, kept so a re-save (e.g. after SFT) keeps it
_SELECTION: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


@dataclass
class SkipConfig:
    """What ``hopscotch.json`` holds: skipped blocks (layer indices) and every layer's scales
    ``[b_att, s_att, b_mlp, s_mlp]``; ``selection`` records how the blocks were chosen."""

    num_layers: int
    skip_attention: list[int] = field(default_factory=list)
    skip_mlp: list[int] = field(default_factory=list)
    scales: list[list[float]] = field(default_factory=list)
    selection: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.scales:
            self.scales = [[1.0] * 4 for _ in range(self.num_layers)]
        if len(self.scales) != self.num_layers or any(len(s) != 4 for s in self.scales):
            raise ConfigError(
                f"{SKIP_CONFIG_FILE}: `scales` must hold {self.num_layers} rows of 4 numbers "
                f"({', '.join(SCALE_NAMES)})"
            )
        if not all(math.isfinite(v) for row in self.scales for v in row):
            raise ConfigError(f"{SKIP_CONFIG_FILE}: `scales` holds a non-finite number")
        for name in ("skip_attention", "skip_mlp"):
            bad = [i for i in getattr(self, name) if not 0 <= i < self.num_layers]
            if bad:
                raise ConfigError(
                    f"{SKIP_CONFIG_FILE}: `{name}` names layer(s) {bad}, but the model has "
                    f"layers 0..{self.num_layers - 1}"
                )
            setattr(self, name, sorted(set(getattr(self, name))))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = SKIP_CONFIG_FILE) -> SkipConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("num_layers"), int):
            raise ConfigError(f"{where}: expected an object with an integer `num_layers`")
        known = {"num_layers", "skip_attention", "skip_mlp", "scales", "selection"}
        if unknown := sorted(set(raw) - known):
            raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**raw)
        except ConfigError as e:  # its messages start with the bare file name
            raise ConfigError(str(e).replace(f"{SKIP_CONFIG_FILE}: ", f"{where}: ", 1)) from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None


def read_skip_config(model_dir: str | Path) -> SkipConfig | None:
    """The ``hopscotch.json`` of a model directory, or None when it has none."""
    path = Path(model_dir) / SKIP_CONFIG_FILE
    if not path.is_file():
        return None
    return SkipConfig.from_json(path.read_text(encoding="utf-8"), where=str(path))


class ScaledLayer(GradientCheckpointingLayer):
    """A decoder layer with four scalars and optional skipped blocks (see the module doc).

    It adopts ``layer``'s submodules (same names, same objects) and keeps ``layer`` itself,
    unregistered, for :func:`unwrap_scaled`.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        names = _SANDWICH if hasattr(layer, "pre_feedforward_layernorm") else _PRE_NORM
        missing = [n for n in names if not isinstance(getattr(layer, n, None), nn.Module)]
        own = list(layer.named_parameters(recurse=False)) + list(layer.named_buffers(recurse=False))
        if missing or own:
            raise ConfigError(
                f"{type(layer).__name__}: not a pre-norm decoder layer burnish can scale "
                f"(missing {missing or 'nothing'}, own tensors {[n for n, _ in own]}); "
                "supported: Llama, Qwen2, Mistral, Gemma3 and their like"
            )
        self.sandwich = names is _SANDWICH
        for name in names:
            setattr(self, name, getattr(layer, name))
        param = next(layer.parameters())
        self.scales = nn.Parameter(torch.ones(4, dtype=torch.float32, device=param.device))
        self.skip_attention = False
        self.skip_mlp = False
        # probe(layer, x, x1, out): called with each forward's hidden states when set (block
        # similarity scores for selection); None in normal use
        self.probe: (
            Callable[[ScaledLayer, torch.Tensor, torch.Tensor, torch.Tensor], None] | None
        ) = None
        self.layer_idx = int(getattr(self.self_attn, "layer_idx", getattr(layer, "layer_idx", 0)))
        self.__dict__["original"] = layer  # not a submodule: its children are already ours

    def attention_block(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Attn(Norm(x)) [B, T, H] (Gemma3: with its post-attention norm)."""
        out, _ = self.self_attn(hidden_states=self.input_layernorm(x), **kwargs)
        return self.post_attention_layernorm(out) if self.sandwich else out

    def mlp_block(self, x: torch.Tensor) -> torch.Tensor:
        """MLP(Norm(x)) [B, T, H] (Gemma3: pre- and post-feedforward norms)."""
        if self.sandwich:
            return self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        return self.mlp(self.post_attention_layernorm(x))

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> torch.Tensor:
        b_att, s_att, b_mlp, s_mlp = self.scales.to(hidden_states.dtype).unbind()
        if self.skip_attention:
            _hold_no_kv(kwargs.get("cache", kwargs.get("past_key_values")), self.layer_idx)
            x1 = s_att * hidden_states
        else:
            x1 = b_att * self.attention_block(hidden_states, **kwargs) + s_att * hidden_states
        out = s_mlp * x1 if self.skip_mlp else b_mlp * self.mlp_block(x1) + s_mlp * x1
        if self.probe is not None:
            self.probe(self, hidden_states, x1, out)
        return out


def _hold_no_kv(cache: object, layer_idx: int) -> None:
    """Make ``cache``'s slot ``layer_idx`` a ``DummyLayer`` (nothing stored, passed over by
    the cache's length and mask lookups). Layers run in order, so the slot is the next one to
    create, or a pre-made layer that holds nothing yet."""
    if not isinstance(cache, Cache):
        return
    layers = cache.layers
    if len(layers) == layer_idx:
        layers.append(DummyLayer())
        return
    if len(layers) < layer_idx:
        raise ConfigError(
            f"the cache has {len(layers)} layers, but skipped layer {layer_idx} runs next; "
            "a cache must be filled by the model's layers in order"
        )
    slot = layers[layer_idx]
    if isinstance(slot, DummyLayer):
        return
    keys = getattr(slot, "keys", None)
    if getattr(slot, "is_initialized", False) and keys is not None and keys.numel() > 0:
        raise ConfigError(
            f"the cache already holds keys for layer {layer_idx}, whose attention this "
            "model skips: it was filled by a model that does not skip it"
        )
    layers[layer_idx] = DummyLayer()


# --- wrapping ------------------------------------------------------------------------------


def decoder_layer_list(model: PreTrainedModel) -> nn.ModuleList:
    """The ModuleList of decoder layers (``model.model.layers`` for HF causal LMs)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ConfigError(f"{type(model).__name__}: cannot find its decoder layers")
    return layers


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layer modules, found through the model's own ``_no_split_modules`` class
    names (never by model name); wrapped :class:`ScaledLayer` s count as the layers they wrap.
    Empty when there are none."""
    kinds = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in kinds or isinstance(m, ScaledLayer)]


def is_scaled(model: PreTrainedModel) -> bool:
    """Whether ``model``'s decoder layers are wrapped in :class:`ScaledLayer`."""
    try:
        layers = decoder_layer_list(model)
    except ConfigError:
        return False
    return len(layers) > 0 and all(isinstance(m, ScaledLayer) for m in layers)


def scaled_layers(model: PreTrainedModel) -> list[ScaledLayer]:
    """The wrapped layers of a model wrapped by :func:`wrap_scaled` (ConfigError if not)."""
    if not is_scaled(model):
        raise ConfigError(f"{type(model).__name__}: its decoder layers are not wrapped")
    return list(decoder_layer_list(model))


def wrap_scaled(model: PreTrainedModel) -> list[ScaledLayer]:
    """Wrap every decoder layer in place (idempotent); returns the wrapped layers."""
    if is_scaled(model):
        return scaled_layers(model)
    layers = decoder_layer_list(model)
    for i, layer in enumerate(layers):
        layers[i] = ScaledLayer(layer)
    return list(layers)


def unwrap_scaled(model: PreTrainedModel) -> PreTrainedModel:
    """Put the original decoder layers back (scales and skips are dropped); returns ``model``."""
    if is_scaled(model):
        layers = decoder_layer_list(model)
        for i, layer in enumerate(layers):
            layers[i] = layer.original
        _SELECTION.pop(model, None)
    return model


def apply_skip_config(model: PreTrainedModel, config: SkipConfig) -> list[ScaledLayer]:
    """Wrap ``model`` (if needed) and set its scales and skipped blocks from ``config``."""
    layers = wrap_scaled(model)
    if config.num_layers != len(layers):
        raise ConfigError(
            f"{SKIP_CONFIG_FILE} is for {config.num_layers} layers, the model has {len(layers)}"
        )
    with torch.no_grad():
        for i, layer in enumerate(layers):
            layer.scales.copy_(torch.tensor(config.scales[i], dtype=layer.scales.dtype))
            layer.skip_attention = i in config.skip_attention
            layer.skip_mlp = i in config.skip_mlp
    _SELECTION[model] = dict(config.selection)
    return layers


def record_selection(model: PreTrainedModel, selection: dict) -> None:
    """Remember how ``model``'s skipped blocks were chosen (saved in ``hopscotch.json``)."""
    _SELECTION[model] = dict(selection)


def current_skip_config(model: PreTrainedModel, selection: dict | None = None) -> SkipConfig:
    """A wrapped model's skips and scales as a :class:`SkipConfig`; ``selection`` defaults to
    the one it was loaded with."""
    layers = scaled_layers(model)
    if selection is None:
        selection = _SELECTION.get(model)
    return SkipConfig(
        num_layers=len(layers),
        skip_attention=[i for i, m in enumerate(layers) if m.skip_attention],
        skip_mlp=[i for i, m in enumerate(layers) if m.skip_mlp],
        scales=[[float(v) for v in m.scales.detach().cpu()] for m in layers],
        selection=dict(selection or {}),
    )


def plain_state_dict(
    model: PreTrainedModel, state: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """``state`` (default ``model.state_dict()``) without the wrapped layers' scales: the
    stock weight names."""
    drop = {f"{n}.scales" for n, m in model.named_modules() if isinstance(m, ScaledLayer)}
    return {k: v for k, v in (state or model.state_dict()).items() if k not in drop}
