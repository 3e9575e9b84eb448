"""``burnish merge``, ``burnish aim-stats``, ``burnish aim-apply``: model merging with AIM."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import TEMPLATE_OPT, console

__all__ = [
    "aim_apply_command",
    "aim_stats_command",
    "kept_merge",
    "kept_stats",
    "merge_command",
]

OVERWRITE_OPT = typer.Option(
    False, help="Write into an existing folder: replaces the model files, keeps other files."
)


def kept_merge(out: Path, **_: object) -> str:
    """An interrupted merge leaves nothing: its temporary folder is removed."""
    return f"nothing was written to {out} (the partial output was removed); run it again"


def kept_stats(output: Path, **_: object) -> str:
    return f"nothing was written to {output}; run it again"


def merge_command(
    config: Path = typer.Argument(..., help="Merge YAML (mergekit-style; see examples/)."),
    out: Path = typer.Argument(..., help="Output model directory (written atomically)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a top-level key: KEY=VALUE."),
    omega: float | None = typer.Option(
        None, help="Apply AIM with this omega (adds/overrides the aim: section)."
    ),
    max_shard_size: str | None = typer.Option(None, help="Largest output shard, e.g. 2GB."),
    progress: bool = typer.Option(True, help="Show a progress bar over tensors."),
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Merge fine-tunes of one base model, optionally with AIM, one tensor at a time.

    OUT must be new or empty (or pass --overwrite), and outside every input model."""
    from burnish.config import parse_overrides
    from burnish.merge import load_merge_config, run_merge

    overrides = parse_overrides(set_)
    if omega is not None:
        overrides["aim"] = {**_aim_section(config), "omega": omega}
    cfg = load_merge_config(config, overrides)
    result = run_merge(
        cfg, out, max_shard_size=max_shard_size, progress=progress, overwrite=overwrite
    )
    console.print(
        f"merged {result.tensors} tensors into {result.output} ({result.shards} shard(s), "
        f"{result.seconds:.1f} s)"
        + (f"; AIM statistics: {result.aim_stats}" if result.aim_stats else "")
    )


def _aim_section(config: Path) -> dict:
    import yaml

    try:
        loaded = yaml.safe_load(config.read_text()) if config.is_file() else None
    except yaml.YAMLError:
        return {}  # load_merge_config reports the YAML error with the file named
    aim = loaded.get("aim") if isinstance(loaded, dict) else None
    return dict(aim) if isinstance(aim, dict) else {}


def aim_stats_command(
    model: str = typer.Argument(..., help="Base model directory or zoo name."),
    data: str = typer.Argument(
        "zoo", help="Calibration: zoo (task chats), pydoc (real text), a text file or JSONL."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Statistics file (.safetensors)."),
    block_size: int = typer.Option(512, min=2, help="Tokens per calibration block."),
    max_texts: int = typer.Option(256, min=1, help="Calibration blocks at most."),
    batch_size: int = typer.Option(8, min=1, help="Blocks per forward pass."),
    overwrite: bool = typer.Option(False, help="Recompute and replace an existing OUTPUT."),
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Precompute AIM statistics of MODEL for use as ``aim: {stats: FILE}``.

    The statistics are the mean |input activation| per channel of every linear layer and
    norm."""
    from burnish.io import check_output_file
    from burnish.merge import compute_or_load_stats
    from burnish.models.zoo import resolve_model

    check_output_file(output, overwrite)
    stats, path = compute_or_load_stats(
        resolve_model(model),
        None if data == "zoo" else data,
        output,
        block_size,
        max_texts,
        batch_size,
        overwrite=overwrite,
        chat_template=chat_template,
    )
    console.print(f"AIM statistics of {len(stats)} weights -> {path}")


def aim_apply_command(
    merged: str = typer.Argument(..., help="A merged model directory."),
    out: Path = typer.Argument(..., help="Output model directory."),
    base: str = typer.Option(..., "--base", "-b", help="The base model of the merge."),
    omega: float = typer.Option(0.4, help="1 = unchanged; 0 = busiest channel at base value."),
    stats: Path | None = typer.Option(None, help="Statistics file (from aim-stats)."),
    data: str | None = typer.Option(None, help="Calibration data when there is no stats file."),
    progress: bool = typer.Option(True, help="Show a progress bar over tensors."),
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Apply AIM to any merged model as a post-step."""

    from burnish.config import load_config
    from burnish.merge import AIMConfig, apply_aim

    values = {"omega": omega, "stats": str(stats) if stats else None, "data": data}
    aim = load_config(AIMConfig, None, values)
    result = apply_aim(merged, base, out, aim, progress=progress, overwrite=overwrite)
    console.print(f"AIM (omega {omega}) applied to {result.tensors} tensors -> {result.output}")


def _methods_help() -> str:
    """The merge methods and their options, read from the registry's one declaration."""
    from burnish.merge.registry import MERGE_METHODS

    lines = ["Merge methods (merge_method: in the YAML) and their options (defaults):"]
    for m in MERGE_METHODS.values():
        opts = ", ".join(f"{'lambda' if k == 'lam' else k}={v!r}" for k, v in m.defaults.items())
        lines.append(f"  {m.name}: {m.summary} ({opts})")
    return "\n\n".join(lines)


merge_command.__doc__ = (merge_command.__doc__ or "") + "\n\n" + _methods_help()
