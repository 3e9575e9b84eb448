"""The ``burnish`` command line: one typer app, a module per command group.

Commands are thin: parse, call the typed Python function, print. Exit statuses:

- 0: done; 2: a user error (:class:`burnish.errors.BurnishError` or a bad option), printed as
  one ``error: ...`` line;
- 130 (Ctrl-C) and 143 (SIGTERM): stopped, with one line saying what was kept and how to go
  on. SIGTERM is turned into an exception like Ctrl-C, so both clean up the same way (a
  half-written output is removed).

Building the command list imports no torch or transformers (``burnish --help`` is fast):
command modules import their heavy dependencies inside the command functions.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from burnish import __version__
from burnish.errors import BurnishError, Terminated

__all__ = ["Interrupted", "app", "main"]

app = typer.Typer(
    name="burnish",
    help="Take a small causal LM through its customisation life: tasks, data, SFT, OSFT, "
    "merging, skipping attention blocks, quantized KV caches, serving, inference-time scaling, "
    "evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Interrupted(Exception):
    """A command stopped by a signal; ``message`` says what was kept. Not a KeyboardInterrupt
    (typer would turn that into a bare exit status)."""

    def __init__(self, message: str, terminated: bool) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = 143 if terminated else 130


def interruptible(
    command: Callable[..., None], kept: Callable[..., str] | None = None
) -> Callable[..., None]:
    """Wrap a command so Ctrl-C/SIGTERM end it with :class:`Interrupted`, whose message is
    ``kept(**the command's arguments)`` (what is on disk and how to continue)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except BaseException as e:
            # Whatever a signal turned into on its way out (a KeyboardInterrupt, asyncio's
            # CancelledError, or an error an extension made of it) is the interruption.
            if not (_SIGNALS_SEEN or isinstance(e, KeyboardInterrupt)):
                raise
            terminated = isinstance(e, Terminated) or signal.SIGTERM in _SIGNALS_SEEN
            raise Interrupted(_kept_note(kept, kwargs), terminated) from None

    return run


def _kept_note(kept: Callable[..., str] | None, kwargs: dict[str, Any]) -> str:
    if kept is None:
        return "nothing was written"
    try:
        return kept(**kwargs)
    except (KeyboardInterrupt, Exception):  # never let the note hide the interruption
        return "what was kept could not be determined"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"burnish {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="Print the version and exit."
    ),
) -> None:
    """Take a small causal LM through its customisation life."""


def _register() -> None:
    from burnish.cli import (
        compress,
        continual,
        data,
        evaluate,
        merge,
        models,
        quickstart,
        reward,
        scale,
        sdg,
        serve,
        sft,
        tasks,
        zoo,
    )

    app.add_typer(tasks.app, name="tasks")
    app.add_typer(models.app, name="models")
    app.add_typer(data.app, name="data")
    app.add_typer(zoo.app, name="zoo")
    app.command("sft")(interruptible(sft.sft_command, sft.kept))
    app.command("osft")(interruptible(sft.osft_command, sft.kept))
    app.command("dpo")(interruptible(sft.dpo_command, sft.kept))
    app.command("phases")(interruptible(sft.phases_command, sft.kept_phases))
    app.command("continual")(interruptible(continual.continual_command, continual.kept))
    app.command("merge")(interruptible(merge.merge_command, merge.kept_merge))
    app.command("aim-stats")(interruptible(merge.aim_stats_command, merge.kept_stats))
    app.command("aim-apply")(interruptible(merge.aim_apply_command, merge.kept_merge))
    app.command("scale")(interruptible(scale.scale_command, scale.kept))
    app.command("eval")(interruptible(evaluate.eval_command, evaluate.kept))
    app.command("serve")(interruptible(serve.serve_command, serve.kept))
    app.command("hopscotch")(interruptible(compress.hopscotch_command, compress.kept))
    app.command("hopscotch-export")(interruptible(compress.export_command))
    app.command("reward-eval")(interruptible(reward.reward_eval_command, reward.kept))
    app.command("label")(interruptible(reward.label_command, reward.kept_labels))
    app.command("taxonomy")(interruptible(sdg.taxonomy_command))
    app.command("generate")(interruptible(sdg.generate_command, sdg.kept_generated))
    app.command("mix")(interruptible(sdg.mix_command))
    app.command("quickstart")(interruptible(quickstart.quickstart_command, quickstart.kept))
    _reflow_help(app)


def _reflow(doc: str) -> str:
    """``doc`` with each prose paragraph on one line (typer keeps a docstring's line breaks,
    which the terminal then wraps a second time); indented or bulleted paragraphs stay."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    keep = ("-", " ", "$", "\b")
    return "\n\n".join(
        p if any(line.startswith(keep) for line in p.splitlines()) else " ".join(p.split())
        for p in paragraphs
    )


def _reflow_help(group: typer.Typer) -> None:
    """Give every command of ``group`` (and its sub-groups) its docstring reflowed as help."""
    for info in group.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = _reflow(info.callback.__doc__)
    for sub in group.registered_groups:
        _reflow_help(sub.typer_instance)


_register()


# The signals (SIGINT, SIGTERM) that stopped the current command: set by the handler that
# :func:`main` installs, read when the interruption is reported. Per process, like signals.
_SIGNALS_SEEN: list[int] = []


def _on_signal(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM alike: inside an event loop (``burnish scale``) cancel its tasks, as
    asyncio.run does for Ctrl-C; elsewhere raise KeyboardInterrupt (Terminated for SIGTERM),
    so ``finally`` blocks and temporary-file clean-up run on the way out."""
    _SIGNALS_SEEN.append(signum)
    asyncio = sys.modules.get("asyncio")  # not imported: no event loop can be running
    loop = asyncio.events._get_running_loop() if asyncio is not None else None
    if loop is not None:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        return
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def _signals_as_interrupts() -> Iterator[list[int]]:
    """Install :func:`_on_signal` for SIGINT and SIGTERM while inside (main thread only);
    yields the list of signals received."""
    _SIGNALS_SEEN.clear()
    try:
        previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield _SIGNALS_SEEN
        return
    try:
        yield _SIGNALS_SEEN
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _click_exceptions() -> tuple[type[Exception], ...]:
    """ClickException of the click that typer runs: recent typer vendors it as typer._click."""
    import contextlib
    import importlib

    found = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        with contextlib.suppress(ImportError):
            found.append(importlib.import_module(name).ClickException)
    return tuple(found)


def _usage_line(e: Exception) -> str:
    """A click usage error as one line naming the command to get help on."""
    ctx = getattr(e, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"{e.format_message()}{where}".replace("\n", " ")


def _quiet_hf_progress() -> None:
    """Our own progress bars only: HF's are off (by env var before transformers loads, which
    keeps ``--help`` free of it; directly when something already imported it)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; the exit status follows the module docstring."""
    _quiet_hf_progress()
    with _signals_as_interrupts() as seen:
        try:
            rc = app(args=argv, prog_name="burnish", standalone_mode=False)
        except BurnishError as e:
            typer.secho(f"error: {e}", fg="red", err=True)
            return 2
        except Interrupted as e:
            signame = "SIGTERM" if e.exit_code == 143 else "Ctrl-C"
            typer.secho(f"stopped by {signame}: {e.message}", fg="yellow", err=True)
            return e.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            return 130
        except Exception as e:  # click usage errors
            if isinstance(e, _click_exceptions()):
                typer.secho(f"error: {_usage_line(e)}", fg="red", err=True)
                return e.exit_code
            raise
    terminated = signal.SIGTERM in seen
    if rc == 130:  # typer's status for an interrupt before any command ran
        typer.echo(
            f"stopped by {'SIGTERM' if terminated else 'Ctrl-C'}: nothing was written", err=True
        )
        return 143 if terminated else 130
    return rc if isinstance(rc, int) else 0
