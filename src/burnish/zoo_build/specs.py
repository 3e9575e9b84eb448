"""What each zoo model is made of: one spec per model (recorded on its card)."""

from __future__ import annotations

from dataclasses import dataclass, field

from burnish.tasks import list_tasks

__all__ = [
    "CHECK_SAMPLE",
    "PRM_NAME",
    "TEACHER_NAME",
    "ZOO_RECOMMENDED",
    "ZOO_SPECS",
    "PRMSpec",
    "TeacherSpec",
    "ZooSpec",
]

# The held-out sample every card records and the zoo test re-scores: the first
# CHECK_SAMPLE test problems of each task at seed 0, greedy, batch 64.
CHECK_SAMPLE = 64


@dataclass(frozen=True)
class ZooSpec:
    """How one zoo model is made."""

    name: str
    description: str
    tasks: tuple[str, ...]
    steps: int
    parent: str | None = None  # fine-tune of this zoo model (built first)
    arch: str = "llama"
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    samples_per_task: int = 20_000
    batch: int = 128
    lr: float = 2e-3
    seed: int = 0
    best_of: int = 0  # also record pass@best_of with sampling (temperature 1)
    extra: dict = field(default_factory=dict)


# Fine-tuning hyperparameters every zoo model's card recommends (used by `burnish sft`,
# `osft` and `continual` when the user sets none): the rate the zoo's own fine-tunes and the
# continual benchmark use; the SFT default (2e-5, for 1-8B models) barely moves these models.
ZOO_RECOMMENDED = {"lr": 1e-3}


PRM_NAME = "arith-prm"  # built after the others, from arith-policy (see burnish.zoo_build.prm)

ZOO_SPECS: dict[str, ZooSpec] = {
    s.name: s
    for s in [
        ZooSpec(
            "base",
            "Llama-architecture base model trained on a mixture of every task.",
            tasks=tuple(list_tasks()),
            steps=1200,
            samples_per_task=12_000,
        ),
        ZooSpec(
            "ft-addition",
            "`base` fine-tuned on two-digit addition.",
            parent="base",
            tasks=("addition",),
            steps=300,
            lr=1e-3,
        ),
        ZooSpec(
            "ft-sorting",
            "`base` fine-tuned on sorting digits.",
            parent="base",
            tasks=("sorting",),
            steps=300,
            lr=1e-3,
        ),
        ZooSpec(
            "ft-reversal",
            "`base` fine-tuned on string reversal.",
            parent="base",
            tasks=("reversal",),
            steps=300,
            lr=1e-3,
        ),
        ZooSpec(
            "arith-policy",
            "`base` fine-tuned briefly on the multi-step arithmetic chain: "
            "a policy whose best-of-16 clearly beats its greedy answer.",
            parent="base",
            tasks=("arith_chain",),
            steps=150,
            lr=1e-3,
            best_of=16,
        ),
        ZooSpec(
            "qwen2-mix",
            "Qwen2-architecture model trained on the task mixture (a second "
            "architecture, so nothing silently depends on Llama).",
            arch="qwen2",
            tasks=tuple(list_tasks()),
            steps=600,
            samples_per_task=6_000,
            hidden_size=96,
            num_layers=3,
            num_heads=4,
            num_kv_heads=2,
        ),
    ]
}


@dataclass(frozen=True)
class PRMSpec:
    """How ``arith-prm`` is made (recorded on its card)."""

    name: str = "arith-prm"
    tasks: tuple[str, ...] = ("arith_chain",)
    parent: str = "arith-policy"
    prompts: int = 3000
    samples_per_task: int = 2  # sampled solutions per train prompt
    corruptions: int = 3  # corrupted copies of the gold solution per train prompt
    temperature: float = 1.0
    steps: int = 300
    batch: int = 64
    lr: float = 1e-4
    warmup: int = 30
    dense: float = 0.0  # weight of the per-character auxiliary labels (0: separators only)
    seed: int = 0
    extra_layers: int = 0  # fresh decoder layers stacked on the policy's (start as identity)
    untie: bool = False  # own lm_head, so training the '+'/'-' head leaves the operators alone
    freeze_policy: bool = False  # train only the extra layers, final norm and lm_head
    separator: str = "\n"
    good: str = "+"
    bad: str = "-"
    # kind "likelihood": score = sigmoid(beta * answer log-likelihood so far + bias)
    kind: str = "likelihood"
    trunk_steps: int = 1000  # SFT steps on gold solutions before the PRM fit (likelihood kind)
    trunk_samples: int = 60_000
    trunk_lr: float = 1e-3
    head_lr: float = 0.05  # beta and bias (likelihood kind)
    init_bias: float = 0.0


TEACHER_NAME = "teacher"  # built from base (see burnish.zoo_build.teacher)


@dataclass(frozen=True)
class TeacherSpec:
    """How the zoo's SDG teacher is made (recorded on its card): ``base`` fine-tuned on the
    built-in flows' prompts (see :mod:`burnish.zoo_build.teacher_data`)."""

    name: str = TEACHER_NAME
    parent: str = "base"
    tasks: tuple[str, ...] = tuple(list_tasks())  # the skills it teaches
    per_task: int = 3000  # skill items per task (spread over the four skill blocks)
    knowledge: int = 6000  # knowledge items (four flow blocks and three rewrites)
    passage_tokens: int = 300  # training passages: chunk size in (character) tokens
    context: int = 2048  # max_position_embeddings of the teacher (a flow prompt is long)
    max_seq_len: int = 1536
    steps: int = 1400
    batch: int = 32
    lr: float = 1e-3
    seed: int = 0
    eval_items: int = 32  # held-out items per skill block and task (and per knowledge block)
