"""``burnish zoo``: list the shipped tiny models with their cards; rebuild them from seed."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import console, print_table, split_names

app = typer.Typer(help="The built-in tiny model zoo.", no_args_is_help=True)


def _d(field: str) -> object:
    """A PRMSpec default, for the help text (one definition, in burnish.zoo_build.specs)."""
    from burnish.zoo_build.specs import PRMSpec

    return PRMSpec.__dataclass_fields__[field].default


@app.command("list")
def list_command() -> None:
    """Show every zoo model: architecture, size, parent, accuracy per task."""
    from burnish.models.zoo import ZOO_DIR, list_zoo, zoo_card

    rows = []
    for name in list_zoo():
        card = zoo_card(name)
        acc = ", ".join(f"{t} {a:.2f}" for t, a in card["accuracy"].items())
        rows.append(
            (
                name,
                card["architecture"],
                f"{card['parameters']:,}",
                card["spec"]["parent"] or "-",
                acc,
            )
        )
    print_table(
        f"zoo ({ZOO_DIR})", ("name", "architecture", "params", "parent", "greedy accuracy"), rows
    )


@app.command("build")
def build_command(
    names: str = typer.Option("", help="Comma-separated zoo models (default: all)."),
    out: Path | None = typer.Option(None, help="Output folder (default: the package's zoo)."),
    overwrite: bool = typer.Option(
        False, help="Replace existing model folders under OUT (the shipped zoo included)."
    ),
    progress: bool = typer.Option(True, help="Show training and evaluation progress."),
    prm_name: str | None = typer.Option(
        None, help=f"PRM: output folder name (default {_d('name')})."
    ),
    prm_kind: str | None = typer.Option(
        None, help=f"PRM: likelihood | two_class (default {_d('kind')})."
    ),
    prm_steps: int | None = typer.Option(
        None, min=1, help=f"PRM: fit steps (default {_d('steps')})."
    ),
    prm_lr: float | None = typer.Option(None, help=f"PRM: fit learning rate (default {_d('lr')})."),
    trunk_steps: int | None = typer.Option(
        None,
        min=0,
        help=f"PRM: SFT steps on gold solutions before the fit (default {_d('trunk_steps')}).",
    ),
    extra_layers: int | None = typer.Option(
        None,
        min=0,
        help=f"PRM (two_class): fresh decoder layers on top (default {_d('extra_layers')}).",
    ),
    untie: bool = typer.Option(False, help="PRM (two_class): its own lm_head."),
    freeze_policy: bool = typer.Option(
        False, help="PRM (two_class): train only the new layers, final norm and lm_head."
    ),
    dense: float | None = typer.Option(
        None,
        min=0.0,
        help=f"PRM (two_class): weight of per-character labels (default {_d('dense')}).",
    ),
) -> None:
    """Retrain zoo models from seed with burnish's SFT recipe (minutes on 2 CPU cores).

    The PRM (arith-prm) is built last, from arith-policy, as the --prm-* options say (unset
    ones keep burnish.zoo_build.PRMSpec's defaults). Existing model
    folders are refused without --overwrite (all are checked first)."""
    from dataclasses import replace

    from burnish.models.zoo import ZOO_DIR
    from burnish.zoo_build import PRMSpec, build_zoo

    given = {
        "name": prm_name,
        "kind": prm_kind,
        "steps": prm_steps,
        "lr": prm_lr,
        "trunk_steps": trunk_steps,
        "extra_layers": extra_layers,
        "untie": untie or None,
        "freeze_policy": freeze_policy or None,
        "dense": dense,
    }
    prm = replace(PRMSpec(), **{k: v for k, v in given.items() if v is not None})
    targets = split_names(names) or None
    for card in build_zoo(targets, out or ZOO_DIR, progress=progress, overwrite=overwrite, prm=prm):
        console.print(f"built {card['name']} in {card['build_seconds']} s: {card['accuracy']}")
