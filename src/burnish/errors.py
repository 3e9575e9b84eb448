"""One error family for everything a user can cause.

Every error a user can trigger (a bad path, a malformed file, an unknown name, a wrong
shape) is a :class:`BurnishError`. The CLI prints its message on one line and exits
non-zero; Python callers can catch the family or a specific subclass.
"""

from __future__ import annotations

__all__ = [
    "BurnishError",
    "ConfigError",
    "DataError",
    "ModelLoadError",
    "OutputExistsError",
    "TaskError",
    "Terminated",
]


class BurnishError(Exception):
    """Base class: a problem the user can fix. The message says what, where and how."""


class ConfigError(BurnishError, ValueError):
    """A configuration value or key is invalid (unknown key, out of range, bad YAML)."""


class DataError(BurnishError, ValueError):
    """Input data is malformed (bad JSONL line, no trainable token, unknown characters)."""


class ModelLoadError(BurnishError, OSError):
    """A model directory is missing, incomplete, not in HF format, or unsafe to load."""


class TaskError(BurnishError, KeyError):
    """An unknown task name or invalid task option."""

    def __str__(self) -> str:  # KeyError would quote the message; keep it readable.
        return str(self.args[0]) if self.args else ""


class OutputExistsError(BurnishError, FileExistsError):
    """An output already exists (or is the wrong kind of path) and may not be replaced."""


class Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler, so a terminated run cleans up as on Ctrl-C."""
