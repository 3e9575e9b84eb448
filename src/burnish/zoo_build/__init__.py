"""Building the zoo: every shipped tiny model (language models, the PRM), from seed.

The one home of zoo building, above ``train`` and ``scaling`` (it uses both; neither imports
it). ``burnish zoo build`` is its command line. The specs are cheap to import; the builders
(torch) load on first use.
"""

from __future__ import annotations

from burnish.lazy import lazy_attributes
from burnish.zoo_build.specs import (
    CHECK_SAMPLE,
    PRM_NAME,
    TEACHER_NAME,
    ZOO_SPECS,
    PRMSpec,
    TeacherSpec,
    ZooSpec,
)

__all__ = [
    "CHECK_SAMPLE",
    "PRM_FITS",
    "PRM_NAME",
    "TEACHER_NAME",
    "ZOO_SPECS",
    "PRMSpec",
    "TeacherSpec",
    "ZooSpec",
    "build_arith_prm",
    "build_teacher",
    "build_zoo",
    "build_zoo_model",
    "finetune_zoo_model",
]

_HOMES = {
    "PRM_FITS": "burnish.zoo_build.prm_fit",
    "build_arith_prm": "burnish.zoo_build.prm",
    "build_teacher": "burnish.zoo_build.teacher",
    "build_zoo": "burnish.zoo_build.build",
    "build_zoo_model": "burnish.zoo_build.lm",
    "finetune_zoo_model": "burnish.zoo_build.lm",
}


__getattr__ = lazy_attributes(__name__, _HOMES)
