"""RewardBench-style evaluation of any reward: pair accuracy per subset and per section.

Rows (JSONL): ``prompt`` (a string, or a message list ending before the response), ``chosen``
and ``rejected`` (strings, or TRL conversational message lists ending in the assistant's
response), optional ``subset``. A pair is correct when score(chosen) > score(rejected); a tie
counts 0.5. As RewardBench does, a section's score is its subsets' accuracies weighted by
their example counts (the sum of correct over the sum of pairs), and the overall score the
mean of the sections. Subsets outside RewardBench's sections form one section each.

A scorer is any ``list[conversation] -> list[float]``: :class:`burnish.reward.DrSow`,
:class:`PRMScorer` (burnish's process reward models, scoring the response's steps as a whole)
or :class:`ClassifierScorer` (a sequence-classification reward model, one logit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from burnish.data.preference import load_pairs

__all__ = [
    "REWARDBENCH_SECTIONS",
    "ClassifierScorer",
    "PRMScorer",
    "PairResult",
    "evaluate_pairs",
    "load_pairs",
    "summarize",
]

Conversation = list[dict[str, str]]
Scorer = Callable[[Sequence[Conversation]], list[float]]

# RewardBench's sections and their subsets (allenai/reward-bench, `SUBSET_MAPPING`).
REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy",
             "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor",
                  "llmbar-adver-GPTInst", "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse",
               "xstest-should-respond", "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python",
                  "hep-rust"),
}  # fmt: skip


@dataclass
class PairResult:
    subset: str
    chosen: float
    rejected: float

    @property
    def correct(self) -> float:
        return 1.0 if self.chosen > self.rejected else 0.5 if self.chosen == self.rejected else 0.0


def evaluate_pairs(
    pairs: Sequence[tuple[Conversation, Conversation, str]], scorer: Scorer
) -> list[PairResult]:
    """Score every chosen and rejected conversation (one scorer call for all)."""
    scores = scorer([c for c, _, _ in pairs] + [r for _, r, _ in pairs])
    n = len(pairs)
    return [PairResult(s, scores[i], scores[n + i]) for i, (_, _, s) in enumerate(pairs)]


def summarize(results: Sequence[PairResult]) -> dict:
    """Accuracy per subset, per section (weighted by example count) and overall."""
    by_subset: dict[str, list[float]] = defaultdict(list)
    for r in results:
        by_subset[r.subset].append(r.correct)
    subsets = {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(by_subset.items())}
    owner = {s: sec for sec, subs in REWARDBENCH_SECTIONS.items() for s in subs}
    grouped: dict[str, list[str]] = defaultdict(list)
    for name in subsets:
        grouped[owner.get(name, name)].append(name)
    sections = {}
    for sec, names in grouped.items():
        n = sum(subsets[s]["n"] for s in names)
        correct = sum(subsets[s]["accuracy"] * subsets[s]["n"] for s in names)
        sections[sec] = {"n": n, "accuracy": correct / n, "subsets": names}
    overall = sum(s["accuracy"] for s in sections.values()) / len(sections)
    return {"overall": overall, "sections": sections, "subsets": subsets,
            "pairs": [asdict(r) | {"correct": r.correct} for r in results]}  # fmt: skip


class PRMScorer:
    """A burnish PRM as a sequence reward: the response's lines (split at the PRM's step
    separator) scored as a whole for the last user message."""

    def __init__(self, prm: Any) -> None:
        self.prm = prm

    def __call__(self, conversations: Sequence[Conversation]) -> list[float]:
        sep = getattr(self.prm, "separator", "\n")
        out = []
        for conv in conversations:
            prompt = next(m["content"] for m in reversed(conv) if m["role"] == "user")
            steps = [s for s in conv[-1]["content"].split(sep) if s.strip()] or [
                conv[-1]["content"]
            ]
            out.append(float(self.prm.score_texts(prompt, [steps], whole=True)[0][-1]))
        return out


class ClassifierScorer:
    """A sequence-classification reward model (one logit) over the rendered conversation."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    @torch.no_grad()
    def __call__(self, conversations: Sequence[Conversation]) -> list[float]:
        from burnish.models.io import chat_text

        texts = [chat_text(self.tokenizer, list(c)) for c in conversations]
        out: list[float] = []
        device = next(self.model.parameters()).device
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i : i + self.batch_size], return_tensors="pt",
                                 padding=True, add_special_tokens=False).to(device)  # fmt: skip
            out += self.model(**enc).logits[:, 0].float().tolist()
        return out
