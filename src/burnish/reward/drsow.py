"""Dr.SoW: the density ratio of a strong over a weak model as a reward.

``r(x, y) = log p_strong(y | x) - log p_weak(y | x)`` over the response tokens, summed
(``"sum"``) or as the difference of the two models' per-token means (``"mean"``: each model
divides by its own token count, since the tokenizers may differ). Each model renders the
conversation with its own chat template (:mod:`burnish.reward.logprobs`).

Customisation without training (:class:`DomainContext`): domain instructions (a system
message) and a few preferred examples (earlier user / assistant turns) placed in both models'
context before the scored conversation; :class:`DomainRouter` picks a context per prompt by
keywords, with a default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from burnish.errors import ConfigError
from burnish.reward.logprobs import Conversation, ResponseLogProbs

__all__ = ["NORMALIZATIONS", "DomainContext", "DomainRouter", "DrSow", "load_context"]

NORMALIZATIONS = ("sum", "mean")


@dataclass
class DomainContext:
    """A system message and ``(prompt, preferred response)`` examples put before a
    conversation (both models see the same context)."""

    instructions: str = ""
    examples: list[tuple[str, str]] = field(default_factory=list)

    def apply(self, conversation: Conversation) -> Conversation:
        head: Conversation = []
        if self.instructions:
            head.append({"role": "system", "content": self.instructions})
        for prompt, response in self.examples:
            head += [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": response},
            ]
        rest = list(conversation)
        if rest and rest[0]["role"] == "system" and self.instructions:
            head[0] = {"role": "system", "content": f"{self.instructions}\n\n{rest[0]['content']}"}
            rest = rest[1:]
        return head + rest


@dataclass
class DomainRouter:
    """Keyword routing: the domain whose keywords occur most often (whole words, any case) in
    the conversation's first user message; ``default`` when none occurs."""

    domains: dict[str, DomainContext]
    keywords: dict[str, list[str]]
    default: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted((set(self.keywords) | {self.default} - {None}) - set(self.domains))
        if unknown:
            raise ConfigError(f"router: keywords or default name unknown domain(s) {unknown}")

    def route(self, conversation: Conversation) -> str | None:
        text = next((m["content"] for m in conversation if m["role"] == "user"), "").lower()
        hits = {
            name: sum(len(re.findall(rf"\b{re.escape(w.lower())}\b", text)) for w in words)
            for name, words in self.keywords.items()
        }
        best = max(hits, key=hits.__getitem__, default=None)
        return best if best is not None and hits[best] > 0 else self.default

    def apply(self, conversation: Conversation) -> Conversation:
        name = self.route(conversation)
        return conversation if name is None else self.domains[name].apply(conversation)


@dataclass
class DrSow:
    """Score responses with ``strong`` over ``weak`` (any two :class:`ResponseLogProbs`)."""

    strong: ResponseLogProbs
    weak: ResponseLogProbs
    normalize: str = "sum"
    context: DomainContext | DomainRouter | None = None

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalisation {self.normalize!r}; choose sum or mean")

    def parts(self, conversations: Sequence[Conversation]) -> list[dict[str, float]]:
        """Per conversation: both models' summed log-probs and token counts."""
        convs = [self.context.apply(c) if self.context else list(c) for c in conversations]
        strong, weak = self.strong(convs), self.weak(convs)
        return [
            {"strong": s, "strong_tokens": ns, "weak": w, "weak_tokens": nw}
            for (s, ns), (w, nw) in zip(strong, weak, strict=True)
        ]

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        """The reward of each conversation's final response."""
        return [self.combine(p) for p in self.parts(conversations)]

    def combine(self, p: dict[str, float]) -> float:
        if self.normalize == "sum":
            return p["strong"] - p["weak"]
        return p["strong"] / max(1, p["strong_tokens"]) - p["weak"] / max(1, p["weak_tokens"])


def load_context(path: str | Path) -> DomainRouter:
    """A router from a YAML/JSON file::

        default: general            # optional: the domain for prompts no keyword matches
        domains:
          maths:
            instructions: Prefer answers whose arithmetic is right.
            keywords: [sum, plus, minus]
            examples: [{prompt: "1+1", response: "Answer: 2"}]

    One domain and no keywords is a fixed context for every prompt."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the context file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("domains"), dict) or not doc["domains"]:
        raise ConfigError(f"{path}: expected a `domains:` mapping of name -> context")
    domains, keywords = {}, {}
    for name, spec in doc["domains"].items():
        spec = spec or {}
        try:
            examples = [(str(e["prompt"]), str(e["response"])) for e in spec.get("examples", [])]
        except (KeyError, TypeError):
            raise ConfigError(
                f"{path}: domain {name!r}: examples need prompt and response"
            ) from None
        domains[name] = DomainContext(str(spec.get("instructions", "")), examples)
        if spec.get("keywords"):
            keywords[name] = [str(k) for k in spec["keywords"]]
    default = doc.get("default") or (next(iter(domains)) if len(domains) == 1 else None)
    return DomainRouter(domains, keywords, default)
