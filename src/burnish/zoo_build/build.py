"""Build the zoo: the language models in dependency order, then the PRM."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from burnish.errors import ConfigError
from burnish.io import check_output_dir
from burnish.models.zoo import ZOO_DIR
from burnish.zoo_build.lm import build_zoo_model
from burnish.zoo_build.prm import build_arith_prm
from burnish.zoo_build.specs import PRM_NAME, TEACHER_NAME, ZOO_SPECS, PRMSpec, TeacherSpec
from burnish.zoo_build.teacher import build_teacher

__all__ = ["build_zoo"]


def build_zoo(
    names: list[str] | None = None,
    out_root: Path = ZOO_DIR,
    progress: bool = True,
    overwrite: bool = False,
    prm: PRMSpec | None = None,
    teacher: TeacherSpec | None = None,
) -> list[dict]:
    """Build the named zoo models (default: all), parents first; ``arith-prm`` (from
    ``arith-policy``) and the SDG ``teacher`` (from ``base``) come last, made as ``prm`` and
    ``teacher`` say (defaults :class:`PRMSpec`, :class:`TeacherSpec`).

    Existing model folders under ``out_root`` (the shipped zoo included) are refused, all
    checked before anything is trained, unless ``overwrite``.
    """
    known = [*ZOO_SPECS, PRM_NAME, TEACHER_NAME]
    names = names or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown zoo model(s) {unknown}; choose from {known}")
    prm = prm or PRMSpec()
    teacher = teacher or TeacherSpec()
    rename = {PRM_NAME: prm.name, TEACHER_NAME: teacher.name}
    folders = [rename.get(n, n) for n in names]
    for name in folders:
        check_output_dir(Path(out_root) / name, overwrite=overwrite, what="zoo model folder")
    order = [n for n in ZOO_SPECS if n in names]  # ZOO_SPECS lists parents first
    cards = [build_zoo_model(ZOO_SPECS[n], out_root, progress, overwrite) for n in order]
    if PRM_NAME in names:
        log = print if progress else (lambda message: None)
        parent = Path(out_root) / prm.parent
        if (parent / "config.json").is_file():  # built here (or this is the shipped zoo)
            prm = replace(prm, parent=str(parent))
        elif (ZOO_DIR / prm.parent / "config.json").is_file():
            log(f"{PRM_NAME}: starting from the shipped {prm.parent} ({ZOO_DIR / prm.parent})")
        else:
            raise ConfigError(f"zoo model {PRM_NAME!r} needs {prm.parent!r} built first")
        cards.append(build_arith_prm(prm, Path(out_root), log=log, overwrite=overwrite))
    if TEACHER_NAME in names:
        cards.append(build_teacher(teacher, Path(out_root), progress, overwrite))
    return cards
