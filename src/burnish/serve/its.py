"""Inference-time scaling as a service: a chat request with ``budget`` runs a registered search.

:class:`ServeStepEngine` is the search engine interface (:class:`burnish.scaling.engine.Engine`)
over the serving engine: each extension of a particle is one engine request (the prompt's ids
plus the particle's own generated ids, ``stop=[delimiter]``, the step token limit, log-probs
on), so the particles of every search in flight share decode steps with all other traffic.
Rows are not forked between steps (each extension prefills its prefix again), as with an
external OpenAI server; the token ids are carried, so nothing is re-tokenized.

:class:`ITSService` holds what the server was started with (the reward model, the default
algorithm and step rules) and runs one search per request; the search's record comes back in
the response's ``its`` field. Nothing is global: each request gets its own
:class:`~burnish.scaling.particles.Problem` (seeded by the request's ``seed``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from transformers import PreTrainedTokenizerBase

from burnish.errors import ConfigError
from burnish.models.io import chat_text
from burnish.scaling.algorithms import SearchOptions, get_algorithm, split_budget
from burnish.scaling.engine import StepConfig, extend_each, finish_reason
from burnish.scaling.particles import Particle, Problem
from burnish.scaling.reward import RewardModel
from burnish.serve.engine import Delta, SamplingParams, ServeEngine
from burnish.serve.limits import ServeLimits

__all__ = ["ITSService", "ServeStepEngine"]


class ServeStepEngine:
    """The step-wise search engine over a :class:`ServeEngine` (see the module docstring)."""

    def __init__(
        self, engine: ServeEngine, tokenizer: PreTrainedTokenizerBase, step: StepConfig
    ) -> None:
        self.engine, self.tokenizer, self.step = engine, tokenizer, step

    def prompt_ids(self, prompt: str) -> tuple[int, ...]:
        text = chat_text(self.tokenizer, [{"role": "user", "content": prompt}], True)
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def start(self, problem: Problem, n: int) -> list[Particle]:
        ids = self.prompt_ids(problem.prompt)
        return [Particle(uid=problem.next_uid(), handle=ids) for _ in range(n)]

    async def extend(
        self, problem: Problem, particles: Sequence[Particle], temperature: float
    ) -> list[Particle]:
        return await extend_each(
            problem, particles, lambda p, seed: self._one(problem, p, temperature, seed)
        )

    async def _one(self, problem: Problem, p: Particle, temperature: float, seed: int):
        if p.finished:
            return p
        prefix = list(p.handle) + list(p.token_ids)
        params = SamplingParams(
            max_tokens=self.step.max_step_tokens,
            temperature=temperature,
            stop=(self.step.delimiter,),
            seed=seed,
            logprobs=0,
        )
        stream = self.engine.submit(prefix, params)
        text, tokens, reason, stop = "", [], None, None
        try:
            async for ev in stream:
                if isinstance(ev, Delta):
                    text, reason = text + ev.text, ev.finish_reason or reason
                    stop = ev.stop_reason or stop
                    tokens.extend(ev.tokens)
        finally:
            stream.cancel()
        u = problem.usage
        u.prefill += len(prefix)
        u.generated += len(tokens)
        u.reencode += len(prefix) + len(tokens)
        u.policy_calls += 1
        hit_delim = reason == "stop" and stop is not None
        hit_eos = reason == "stop" and stop is None
        ids = [t.id for t in tokens]  # an ending EOS included, as the in-process engine keeps it
        steps = (*p.steps, text)
        why = finish_reason(text, len(steps), hit_eos, hit_delim, self.step)
        mean = sum(t.logprob for t in tokens) / len(tokens) if tokens else 0.0
        return p.child(
            problem.next_uid(),
            steps=steps,
            token_ids=p.token_ids + tuple(ids),
            step_logprobs=(*p.step_logprobs, mean),
            finished=why is not None,
            finish_reason=why,
            handle=p.handle,
        )


class ITSService:
    """Searches run for chat requests that carry a ``budget``.

    Args:
        engine, tokenizer: the serving engine and its tokenizer.
        reward: the reward model the server was started with (``--prm``), or None (then only
            reward-free algorithms run). A PRM model is switched to scoring on a worker thread
            (``serve_in_thread``), so HTTP handling goes on while it scores.
        algorithm: the default search (``--its-algorithm``); a request may name another.
        step: step delimiter and limits of the searches.
        max_budget: the largest budget accepted (:class:`~burnish.serve.limits.ServeLimits`).
    """

    def __init__(
        self,
        engine: ServeEngine,
        tokenizer: PreTrainedTokenizerBase,
        reward: RewardModel | None,
        algorithm: str = "particle_filtering",
        step: StepConfig | None = None,
        max_budget: int = ServeLimits.max_budget,
    ) -> None:
        self.reward, self.max_budget = reward, max_budget
        if hasattr(reward, "serve_in_thread"):  # a PRM model: keep it off the event loop
            reward.serve_in_thread()
        self.algorithm = get_algorithm(algorithm).name
        self.steps = ServeStepEngine(engine, tokenizer, step or StepConfig())

    def check(self, budget: int, algorithm: str | None) -> str:
        """The algorithm to run; ConfigError for a bad budget or algorithm."""
        if budget > self.max_budget:
            raise ConfigError(f"budget {budget} is above this server's limit of {self.max_budget}")
        split_budget(budget)
        algo = get_algorithm(algorithm or self.algorithm)
        if algo.needs_reward and self.reward is None:
            raise ConfigError(
                f"its_algorithm {algo.name!r} needs a reward model; this server was started "
                "without --prm (reward-free: greedy, self_consistency)"
            )
        return algo.name

    async def search(
        self, prompt: str, budget: int, algorithm: str, temperature: float, seed: int | None
    ) -> tuple[str, dict[str, Any]]:
        """Run ``algorithm`` on ``prompt``; returns the selected text and the search record."""
        problem = Problem(prompt, seed=secrets.randbits(31) if seed is None else seed)
        opts = SearchOptions(engine=self.steps, reward=self.reward, temperature=temperature)
        result = await get_algorithm(algorithm)(problem, budget, opts)
        fields = asdict(result)
        record = {
            "algorithm": algorithm,
            "budget": budget,
            "budget_split": fields.pop("budget"),  # particles x sweeps x chains used
            **fields,
            "tokens": problem.usage.as_dict(),
        }
        return result.text, record
