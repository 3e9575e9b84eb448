"""The public API: cheap to import, and every advertised name resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import burnish


def test_import_is_light() -> None:
    code = "import sys, burnish; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", [n for n in burnish.__all__ if n != "__version__"])
def test_every_export_resolves(name: str) -> None:
    assert getattr(burnish, name) is not None


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = burnish.nope
