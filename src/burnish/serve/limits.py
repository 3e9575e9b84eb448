"""The server's caps and timeouts: their one definition and defaults."""

from __future__ import annotations

from dataclasses import dataclass

from burnish.errors import ConfigError

__all__ = ["ServeLimits"]


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for, and how much the server takes on.

    Attributes:
        max_tokens: the largest ``max_tokens`` / ``max_completion_tokens`` accepted; also the
            default for chat requests that give none (capped by the context left).
        max_n: the largest ``n`` (choices per prompt).
        max_prompts: prompts per completions request.
        max_prompt_tokens: the longest prompt in tokens (None: the model's context).
        max_body_bytes: the largest request body (413 beyond).
        max_queue: requests waiting for a batch slot (429 beyond).
        max_batch: choices decoded together.
        request_timeout: seconds a request may run before it is cancelled (503).
        max_budget: the largest search ``budget`` a chat request may ask for.
    """

    max_tokens: int = 1024
    max_n: int = 16
    max_prompts: int = 32
    max_prompt_tokens: int | None = None
    max_body_bytes: int = 1 << 20
    max_queue: int = 256
    max_batch: int = 64
    request_timeout: float = 600.0
    max_budget: int = 64

    def __post_init__(self) -> None:
        names = ("max_tokens", "max_n", "max_prompts", "max_body_bytes", "max_queue", "max_budget")
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(f"serve limit {name} must be >= 1, got {getattr(self, name)}")
        if self.max_batch < self.max_n:
            raise ConfigError(
                f"max_batch ({self.max_batch}) must be at least max_n ({self.max_n}): the n "
                "choices of one request are admitted together"
            )
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ConfigError(f"max_prompt_tokens must be >= 1, got {self.max_prompt_tokens}")
        if not self.request_timeout > 0:
            raise ConfigError(f"request_timeout must be > 0 seconds, got {self.request_timeout}")
