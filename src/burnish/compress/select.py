"""Choosing which blocks to skip: Hopscotch's exact greedy search, a cheaper greedy search,
and the baselines (ShortGPT, attention drop by cosine, random), as a registry.

Every selector works on a model wrapped by :func:`burnish.models.skipping.wrap_scaled`, adds
to ``state.chosen`` one block at a time and calls ``save(state)`` after each, so a killed
search resumes from the blocks already chosen (their scales included).

- ``exact`` (the paper): for each remaining attention block, skip it and train the free
  scales for ``steps`` steps from the current scales; keep the block whose mean training loss
  is lowest, with its trained scales; repeat to k.
- ``cheap`` (burnish): the same greedy loop, but a candidate is scored by the calibration loss
  with it skipped and the current scales, forward only (no training), on ``score_batches``
  batches; after each choice the scales get ``fit_steps`` steps. Per round it costs about
  ``candidates * score_batches`` forwards plus ``fit_steps`` steps instead of
  ``candidates * steps`` forward-backward steps.
- ``shortgpt``: block influence 1 - cos(layer input, layer output) over real tokens, the k
  layers of lowest influence removed whole (attention and MLP), one shot.
- ``attn-drop``: the k attention blocks whose output x1 is most similar (cosine) to their
  input x, one shot ("What matters in transformers").
- ``random``: k attention blocks drawn with ``seed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from transformers import PreTrainedModel

from burnish.compress.data import Calibration
from burnish.compress.scales import fit_scales, get_scales, mean_loss, set_scales
from burnish.errors import ConfigError
from burnish.models.skipping import ScaledLayer, scaled_layers
from burnish.progress import progress_bar

__all__ = ["SELECTORS", "SelectionSettings", "SelectionState", "list_selectors", "select"]


@dataclass
class SelectionSettings:
    """How blocks are chosen (the one place these defaults live)."""

    method: str = "exact"
    k: int = 1
    steps: int = 20  # scale-training steps per candidate (exact); 0 = one pass over the data
    lr: float = 1e-2  # the paper's search learning rate
    score_batches: int = 2  # cheap: batches of forward-only loss per candidate
    fit_steps: int = 20  # cheap: scale steps after each choice; 0 = one pass over the data
    seed: int = 0  # random

    def __post_init__(self) -> None:
        if self.method not in SELECTORS:
            raise ConfigError(
                f"unknown selection method {self.method!r}; choose one of {list_selectors()}"
            )
        if self.k < 1:
            raise ConfigError(f"--skip must be at least 1, got {self.k}")
        for name in ("steps", "score_batches", "fit_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


@dataclass
class SelectionState:
    """A search in progress: settings, the blocks chosen so far (in order), the scales after
    the last choice, and a record per round (candidate scores, seconds)."""

    settings: dict
    chosen: list[int] = field(default_factory=list)
    scales: list[list[float]] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


Save = Callable[[SelectionState], None]
Selector = Callable[
    [PreTrainedModel, Calibration, SelectionSettings, SelectionState, Save, bool], None
]


def _record(
    model: PreTrainedModel, state: SelectionState, block: int, scores: dict, t0: float, save: Save
) -> None:
    state.chosen.append(block)
    state.scales = get_scales(model).tolist()
    state.rounds.append({"chosen": block, "scores": {str(k): v for k, v in scores.items()},
                         "seconds": round(time.perf_counter() - t0, 3)})  # fmt: skip
    save(state)


def _remaining(layers: list[ScaledLayer]) -> list[int]:
    return [i for i, m in enumerate(layers) if not m.skip_attention]


def _check_k(layers: list[ScaledLayer], k: int) -> None:
    if k > len(layers):
        raise ConfigError(f"--skip {k}: the model has only {len(layers)} attention blocks")


def _exact(model, calib, s, state, save, progress) -> None:
    layers = scaled_layers(model)
    steps = s.steps or len(calib.batches)
    todo = s.k - len(state.chosen)
    total = sum(len(layers) - len(state.chosen) - r for r in range(todo))
    with progress_bar(total, "exact search", progress) as advance:
        while len(state.chosen) < s.k:
            t0, start = time.perf_counter(), get_scales(model)
            scores, fitted = {}, {}
            for c in _remaining(layers):
                set_scales(model, start)
                layers[c].skip_attention = True
                scores[c] = sum(h := fit_scales(model, calib, steps, s.lr)) / len(h)
                fitted[c] = get_scales(model)
                layers[c].skip_attention = False
                advance(1, info=f"block {c} loss {scores[c]:.4f}")
            best = min(scores, key=scores.__getitem__)
            layers[best].skip_attention = True
            set_scales(model, fitted[best])
            _record(model, state, best, scores, t0, save)


def _cheap(model, calib, s, state, save, progress) -> None:
    layers = scaled_layers(model)
    fit = s.fit_steps or len(calib.batches)
    with progress_bar(s.k - len(state.chosen), "cheap search", progress) as advance:
        while len(state.chosen) < s.k:
            t0, scores = time.perf_counter(), {}
            for c in _remaining(layers):
                layers[c].skip_attention = True
                scores[c] = mean_loss(model, calib, s.score_batches)
                layers[c].skip_attention = False
            best = min(scores, key=scores.__getitem__)
            layers[best].skip_attention = True
            fit_scales(model, calib, fit, s.lr)
            _record(model, state, best, scores, t0, save)
            advance(1, info=f"block {best}")


@torch.no_grad()
def block_similarity(model: PreTrainedModel, calib: Calibration) -> dict[str, list[float]]:
    """Mean cosine over real tokens, per layer: ``layer`` = cos(x, out) (ShortGPT's block
    influence is 1 minus it) and ``attention`` = cos(x, x1)."""
    layers = scaled_layers(model)
    sums = {"layer": [0.0] * len(layers), "attention": [0.0] * len(layers)}
    real: list[torch.Tensor] = []
    index = {id(m): i for i, m in enumerate(layers)}

    def probe(layer: ScaledLayer, x: torch.Tensor, x1: torch.Tensor, out: torch.Tensor) -> None:
        i, keep = index[id(layer)], real[0]
        for key, y in (("layer", out), ("attention", x1)):
            cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1)  # [R, L]
            sums[key][i] += float(cos[keep].double().sum())

    for m in layers:
        m.probe = probe
    try:
        count = 0
        for batch, keep in zip(calib.batches, calib.real, strict=True):
            real[:] = [keep]
            model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                  attention_mask=batch.attention_mask, use_cache=False)  # fmt: skip
            count += int(keep.sum())
    finally:
        for m in layers:
            m.probe = None
    return {k: [v / max(1, count) for v in vals] for k, vals in sums.items()}


def _one_shot(
    order: Callable[[PreTrainedModel, Calibration, SelectionSettings], tuple[list[int], dict]],
    whole: bool = False,
) -> Selector:
    def run(model, calib, s, state, save, progress) -> None:
        layers = scaled_layers(model)
        t0 = time.perf_counter()
        ranked, scores = order(model, calib, s)
        for block in ranked:
            if len(state.chosen) >= s.k:
                break
            if block in state.chosen:
                continue
            layers[block].skip_attention = True
            layers[block].skip_mlp = whole
            _record(model, state, block, scores, t0, save)

    return run


def _by_influence(model, calib, s) -> tuple[list[int], dict]:
    sims = block_similarity(model, calib)["layer"]
    influence = {i: 1.0 - c for i, c in enumerate(sims)}
    return sorted(influence, key=influence.__getitem__), influence


def _by_attention_cosine(model, calib, s) -> tuple[list[int], dict]:
    sims = dict(enumerate(block_similarity(model, calib)["attention"]))
    return sorted(sims, key=lambda i: -sims[i]), sims


def _at_random(model, calib, s) -> tuple[list[int], dict]:
    n = len(scaled_layers(model))
    return random.Random(s.seed).sample(range(n), n), {}


SELECTORS: dict[str, Selector] = {
    "exact": _exact,
    "cheap": _cheap,
    "shortgpt": _one_shot(_by_influence, whole=True),
    "attn-drop": _one_shot(_by_attention_cosine),
    "random": _one_shot(_at_random),
}


def list_selectors() -> list[str]:
    return list(SELECTORS)


def select(
    model: PreTrainedModel,
    calib: Calibration,
    settings: SelectionSettings,
    state: SelectionState | None = None,
    save: Save | None = None,
    progress: bool = False,
) -> SelectionState:
    """Run ``settings.method`` until ``settings.k`` blocks are skipped; ``state`` (from an
    interrupted run of the same settings) resumes it: its blocks and scales are applied
    first. ``save`` is called after each chosen block."""
    layers = scaled_layers(model)
    _check_k(layers, settings.k)
    state = state or SelectionState(settings=asdict(settings))
    if state.settings != asdict(settings):
        raise ConfigError("the saved search was run with other settings; use --overwrite")
    whole = settings.method == "shortgpt"
    for block in state.chosen:
        layers[block].skip_attention = True
        layers[block].skip_mlp = whole
    if state.scales:
        set_scales(model, torch.tensor(state.scales))
    t0 = time.perf_counter() - state.seconds

    def saving(st: SelectionState) -> None:
        st.seconds = round(time.perf_counter() - t0, 3)
        if save is not None:
            save(st)

    SELECTORS[settings.method](model, calib, settings, state, saving, progress)
    state.seconds = round(time.perf_counter() - t0, 3)
    return state
