"""CLI fixtures: run ``burnish.cli.main`` in-process, a saved tiny model, a private data cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from burnish.cli import main
from burnish.io import write_jsonl
from burnish.models import save_model
from burnish.tasks import mixture

CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the processed-data cache out of ~/.cache; wide tables so names are never wrapped."""
    monkeypatch.setenv("BURNISH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    """``cli("eval", "base", ...)`` -> ``(exit code, stdout, stderr)`` of ``burnish ...``."""

    def run(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything printed before
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture(scope="session")
def cli_model_dir(tmp_path_factory: pytest.TempPathFactory, tok, tiny_model) -> Path:
    """A tiny random Llama (hidden 64, 2 layers) with the char tokenizer; read-only for tests."""
    root = tmp_path_factory.mktemp("cli-model")
    return save_model(tiny_model("llama", hidden_size=64), tok, root / "model")


@pytest.fixture
def chat_jsonl(tmp_path: Path) -> Path:
    """10 chat rows: 5 addition + 5 sorting problems (train split, seed 0)."""
    rows = [e.to_messages() for e in mixture(["addition", "sorting"], 5, "train", 0)]
    return write_jsonl(tmp_path / "f.jsonl", rows)
