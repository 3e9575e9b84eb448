"""Load and save local Hugging Face causal-LM directories, safely.

A model directory is config.json + safetensors weights (single file or sharded with an index)
+ tokenizer files. Pickle checkpoints (``*.bin``, ``*.pt``) are refused unless the caller
passes ``allow_pickle=True``; ``trust_remote_code`` is off unless turned on. Saves are atomic.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from burnish.errors import ConfigError, ModelLoadError
from burnish.io import MODEL_WEIGHT_FILES, atomic_dir
from burnish.models.skipping import (
    SKIP_CONFIG_FILE,
    apply_skip_config,
    current_skip_config,
    is_scaled,
    plain_state_dict,
    read_skip_config,
)
from burnish.seeding import seeded

__all__ = [
    "chat_text",
    "check_model_dir",
    "load_config",
    "load_model",
    "load_tokenizer",
    "model_fingerprint",
    "model_from_config",
    "parse_device",
    "parse_dtype",
    "read_chat_template",
    "save_model",
]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
_LOAD_ONLY_KWARGS = ("local_files_only", "is_local")


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """'float32' | 'bfloat16' | 'float16' (or short forms, or a torch.dtype) -> torch.dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose one of float32, bfloat16, float16")
    return _DTYPES[dtype]


def parse_device(device: str | torch.device) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> a torch.device this machine has.

    ConfigError (naming the flag's value and how to fix it) for a device this torch build or
    machine lacks, instead of a traceback from deep inside torch.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise ConfigError(
                f"device {device!r}: this PyTorch build ({torch.__version__}) has no CUDA "
                "support; use --device cpu (or install a CUDA build of torch)"
            )
        count = torch.cuda.device_count()
        if count == 0 or (dev.index is not None and dev.index >= count):
            raise ConfigError(
                f"device {device!r}: {count} CUDA device(s) visible; use --device cpu or "
                "another index (check CUDA_VISIBLE_DEVICES)"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS is not available here; use --device cpu")
    return dev


def check_model_dir(
    path: str | Path, allow_pickle: bool = False, pickle_readable: bool = True
) -> Path:
    """Validate that ``path`` is a local HF model directory with loadable weights.

    ``pickle_readable=False`` is for readers that stream safetensors only (merging): a pickle
    checkpoint is then refused with advice to convert it. Returns the resolved path; raises
    ModelLoadError saying what is missing and how to fix it.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model directory")
    if not path.is_dir():
        raise ModelLoadError(f"{path}: expected a Hugging Face model directory, got a file")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: not a Hugging Face model directory (no config.json)")
    names = [p.name for p in path.iterdir()]
    if any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names):
        return path.resolve()
    pickles = [n for n in names if n.endswith(_PICKLE_SUFFIXES)]
    if pickles and not pickle_readable:
        raise ModelLoadError(
            f"{path}: weights are a pickle checkpoint ({pickles[0]}); this command reads "
            "safetensors only: convert it first if you trust its source (transformers: "
            "AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(NEW_DIR))"
        )
    if pickles and not allow_pickle:
        raise ModelLoadError(
            f"{path}: weights are a pickle checkpoint ({pickles[0]}), which can run arbitrary "
            "code when loaded; convert it to safetensors, or pass --allow-pickle "
            "(Python: allow_pickle=True) if you trust its source"
        )
    if not pickles:
        raise ModelLoadError(f"{path}: no weights found (expected model.safetensors or shards)")
    return path.resolve()


def load_tokenizer(
    path: str | Path,
    trust_remote_code: bool = False,
    chat_template: str | Path | None = None,
) -> PreTrainedTokenizerBase:
    """Load the tokenizer saved beside a model; errors name the directory.

    ``chat_template``: a Jinja template file that replaces (or supplies) the tokenizer's own,
    for base checkpoints that ship without one.
    """
    path = Path(path).expanduser()
    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot load a tokenizer ({e})") from None
    for key in _LOAD_ONLY_KWARGS:  # how it was loaded here, not part of the tokenizer
        tok.init_kwargs.pop(key, None)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if chat_template is not None:
        tok.chat_template = read_chat_template(chat_template)
    return tok


def read_chat_template(path: str | Path) -> str:
    """The text of a Jinja chat template file; ConfigError if it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such chat template file (a Jinja template)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the chat template is not UTF-8 text") from None
    if "messages" not in text:
        raise ConfigError(
            f"{path}: does not look like a chat template (a Jinja template that loops over "
            "`messages`)"
        )
    return text


def chat_text(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
) -> str:
    """The tokenizer's chat template applied to ``messages`` (text, not ids);
    ``continue_final_message`` leaves the last message open for the model to continue.

    ModelLoadError, saying how to supply one, when the tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "the model"
        raise ModelLoadError(
            f"{name}: the tokenizer has no chat template (common for base checkpoints); pass "
            "--chat-template FILE with a Jinja template such as ChatML (Python: "
            "chat_template=FILE)"
        )
    return tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
    )


def load_model(
    path: str | Path,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    attn_implementation: str = "sdpa",
    chat_template: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` from a local HF causal-LM directory.

    Args:
        path: directory with config.json, safetensors weights and tokenizer files.
        dtype: parameter dtype ("float32", "bfloat16", "float16").
        device: where to put the model.
        allow_pickle: accept ``pytorch_model.bin``-style checkpoints (unsafe; off by default).
        trust_remote_code: run custom modelling code shipped in the directory (off by default).
        attn_implementation: "sdpa" (default) or "eager".
        chat_template: a Jinja chat template file for a tokenizer without one.
    """
    device = parse_device(device)
    path = check_model_dir(path, allow_pickle=allow_pickle)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path),
            dtype=parse_dtype(dtype),
            trust_remote_code=trust_remote_code,
            use_safetensors=not allow_pickle,
            attn_implementation=attn_implementation,
        )
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise ModelLoadError(
            f"{path}: cannot load the model ({e}); is a weights file truncated or corrupt?"
        ) from None
    skips = read_skip_config(path)
    if skips is not None:  # a Hopscotch checkpoint: stock weights + skipped blocks and scales
        apply_skip_config(model, skips)
    model.to(device)
    model.eval()
    tok = load_tokenizer(path, trust_remote_code=trust_remote_code, chat_template=chat_template)
    return model, tok


def model_from_config(
    config: PretrainedConfig, seed: int = 0, attn_implementation: str = "sdpa"
) -> PreTrainedModel:
    """A randomly initialised causal LM of ``config`` (seeded, fp32, CPU); the global RNG is
    left as it was."""
    with seeded(seed):
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    return model.eval()


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    path: str | Path,
    dtype: str | torch.dtype | None = None,
    extra_files: dict[str, str] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Save an HF directory (config, safetensors, tokenizer) atomically.

    ``dtype`` casts a copy of the weights for saving (the in-memory model is unchanged);
    ``extra_files`` maps file names to text written beside the weights (e.g. a model card);
    ``state_dict`` replaces the model's own (e.g. the gathered full state of a sharded model).
    A model with scaled layers (Hopscotch) is saved as its stock weights plus
    ``hopscotch.json``, which :func:`load_model` applies again.
    """
    path = Path(path)
    extra_files = dict(extra_files or {})
    if is_scaled(model):
        state_dict = plain_state_dict(model, state_dict)
        extra_files[SKIP_CONFIG_FILE] = current_skip_config(model).to_json()
    with atomic_dir(path, stale=(*MODEL_WEIGHT_FILES, SKIP_CONFIG_FILE)) as tmp:
        state = None if state_dict is None else _drop_tied(model, state_dict)
        if dtype is not None:
            target = parse_dtype(dtype)
            source = state if state is not None else model.state_dict()
            state = {k: v.detach().to(target) for k, v in source.items()}
        model.save_pretrained(str(tmp), state_dict=state, safe_serialization=True)
        if dtype is not None:
            cfg = json.loads((tmp / "config.json").read_text())
            cfg["dtype"] = str(parse_dtype(dtype)).removeprefix("torch.")
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        for name, text in extra_files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return path


def _drop_tied(model: PreTrainedModel, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Omit the output embedding of a tied model, as HF checkpoints do.

    A gathered (e.g. FSDP) state dict holds separate copies of tied tensors, which
    save_pretrained would otherwise write twice.
    """
    if not getattr(model.config, "tie_word_embeddings", False):
        return state
    out_emb = model.get_output_embeddings()
    names = {f"{n}.weight" for n, m in model.named_modules() if m is out_emb}
    return {k: v for k, v in state.items() if k not in names}


def model_fingerprint(model: PreTrainedModel) -> str:
    """sha256 over every parameter's name, shape, dtype and first 4096 values: the weights'
    identity wherever they were loaded from (fine-tunes of one base differ in every tensor,
    so they never share it; a copied or moved model keeps it). Cheap at any model size."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}|{tuple(p.shape)}|{p.dtype}|".encode())
        h.update(p.detach().reshape(-1)[:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()


def load_config(path: str | Path) -> PretrainedConfig:
    """The config of a model directory (no weights read)."""
    path = check_model_dir(path, allow_pickle=True)
    return AutoConfig.from_pretrained(str(path))
