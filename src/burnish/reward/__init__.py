"""Rewards for preference data: Dr.SoW (strong-over-weak density ratio) and response
log-probabilities from local models or OpenAI-compatible servers."""

from burnish.reward.drsow import NORMALIZATIONS, DomainContext, DomainRouter, DrSow
from burnish.reward.logprobs import LocalLogProbs, ResponseLogProbs, ServerLogProbs

__all__ = [
    "NORMALIZATIONS",
    "DomainContext",
    "DomainRouter",
    "DrSow",
    "LocalLogProbs",
    "ResponseLogProbs",
    "ServerLogProbs",
]
