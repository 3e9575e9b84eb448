"""The ``burnish`` command line: one typer app, a module per command group.

Commands are thin: parse, call the typed Python function, print. A user error
(:class:`burnish.errors.BurnishError`) prints one line and exits with status 2.
"""

from __future__ import annotations

import typer

from burnish.errors import BurnishError

__all__ = ["app", "main"]

app = typer.Typer(
    name="burnish",
    help="Take a small causal LM through its customisation life: tasks, data, SFT, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from burnish.cli import continual, data, evaluate, merge, quickstart, scale, sft, tasks, zoo

    app.add_typer(tasks.app, name="tasks")
    app.add_typer(data.app, name="data")
    app.add_typer(zoo.app, name="zoo")
    app.command("sft")(sft.sft_command)
    app.command("osft")(sft.osft_command)
    app.command("continual")(continual.continual_command)
    app.command("merge")(merge.merge_command)
    app.command("aim-stats")(merge.aim_stats_command)
    app.command("aim-apply")(merge.aim_apply_command)
    app.command("scale")(scale.scale_command)
    app.command("eval")(evaluate.eval_command)
    app.command("quickstart")(quickstart.quickstart_command)


_register()


def _click_exceptions() -> tuple[type[Exception], ...]:
    """ClickException of the click that typer runs: recent typer vendors it as typer._click."""
    import contextlib
    import importlib

    found = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        with contextlib.suppress(ImportError):
            found.append(importlib.import_module(name).ClickException)
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line on stderr."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars only
    try:
        app(args=argv, standalone_mode=False)
    except BurnishError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        return 2
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as e:  # click usage errors
        if isinstance(e, _click_exceptions()):
            e.show()
            return e.exit_code
        raise
    return 0
