"""The tunable settings of a search: their one definition, defaults and checks.

Free of torch and numpy, so the CLI can show these defaults in ``--help`` cheaply;
:class:`burnish.scaling.algorithms.SearchOptions` adds the engine and the reward model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from burnish.errors import ConfigError

__all__ = ["AGGREGATIONS", "RESAMPLINGS", "SELECTIONS", "SearchSettings", "setting_default"]

AGGREGATIONS = ("model", "last", "min", "prod")
RESAMPLINGS = ("multinomial", "systematic")
SELECTIONS = ("argmax", "vote")


@dataclass
class SearchSettings:
    """What shapes a search besides its engine and reward model.

    Attributes:
        aggregation: how step scores become one score ("model", "last", "min", "prod").
        temperature: policy sampling temperature (0.8 in the paper).
        tau: temperature of the resampling softmax over logit(score).
        resampling: "multinomial" or "systematic".
        ess_threshold: resample only when ESS < ess_threshold * N (None: every step).
        selection: final answer by "argmax" score or weighted "vote" over final answers.
        sweeps: particle Gibbs / parallel tempering sweeps. chains: parallel tempering chains.
        beam_width: children per kept beam (beam search, DVTS).
    """

    aggregation: str = "model"
    temperature: float = 0.8
    tau: float = 1.0
    resampling: str = "multinomial"
    ess_threshold: float | None = None
    selection: str = "argmax"
    sweeps: int = 2
    chains: int = 2
    beam_width: int = 4

    def __post_init__(self) -> None:
        checks = [
            (self.aggregation in AGGREGATIONS, f"aggregation {self.aggregation!r}", AGGREGATIONS),
            (self.resampling in RESAMPLINGS, f"resampling {self.resampling!r}", RESAMPLINGS),
            (self.selection in SELECTIONS, f"selection {self.selection!r}", SELECTIONS),
        ]
        for ok, what, choices in checks:
            if not ok:
                raise ConfigError(f"unknown {what}; choose one of {', '.join(choices)}")
        if self.tau <= 0 or self.temperature < 0:
            raise ConfigError(
                f"need tau > 0 and temperature >= 0 (got {self.tau}, {self.temperature})"
            )
        if self.sweeps < 1 or self.chains < 1 or self.beam_width < 1:
            raise ConfigError("sweeps, chains and beam_width must be >= 1")
        if self.ess_threshold is not None and not 0 < self.ess_threshold <= 1:
            raise ConfigError(f"ess_threshold must be in (0, 1], got {self.ess_threshold}")

    def settings(self) -> dict[str, object]:
        """The values of the fields defined here (not those a subclass adds)."""
        return {f.name: getattr(self, f.name) for f in fields(SearchSettings)}


def setting_default(name: str) -> object:
    """The default of one setting (for help texts)."""
    return next(f.default for f in fields(SearchSettings) if f.name == name)
