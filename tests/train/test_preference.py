"""Preference losses against the formulas written out independently here (and TRL's where
installed), and packed per-sequence log-prob sums against unpacked ones."""

from __future__ import annotations

import math

import pytest
import torch

from burnish.data.packing import collate_packed, pack_rows
from burnish.errors import ConfigError
from burnish.train.preference import dpo_loss, packed_sequence_logps, simpo_loss

G = torch.Generator().manual_seed(0)
PC, PR, RC, RR = (-40 * torch.rand(6, generator=G, dtype=torch.float64) for _ in range(4))
NC = torch.randint(1, 30, (6,), generator=G).double()
NR = torch.randint(1, 30, (6,), generator=G).double()
BETA = 0.1


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


def by_hand(kind: str, i: int, eps: float = 0.0) -> float:
    c, r = float(PC[i] - RC[i]), float(PR[i] - RR[i])
    if kind == "sigmoid":
        return -(1 - eps) * logsig(BETA * (c - r)) - eps * logsig(-BETA * (c - r))
    if kind == "hinge":
        return max(0.0, 1 - BETA * (c - r))
    return (c / float(NC[i]) - r / float(NR[i]) - 1 / (2 * BETA)) ** 2


@pytest.mark.parametrize(
    ("kind", "eps"), [("sigmoid", 0.0), ("sigmoid", 0.1), ("hinge", 0.0), ("ipo", 0.0)]
)
def test_dpo_losses_equal_the_formulas(kind: str, eps: float) -> None:
    out = dpo_loss(PC, PR, RC, RR, BETA, kind, eps, NC, NR)
    want = torch.tensor([by_hand(kind, i, eps) for i in range(6)], dtype=torch.float64)
    torch.testing.assert_close(out.losses, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.chosen_rewards, BETA * (PC - RC))
    m = out.metrics()
    assert m["rewards/margins"] == pytest.approx(float((BETA * (PC - RC - PR + RR)).mean()))
    assert m["rewards/accuracies"] == pytest.approx(float(((PC - RC) > (PR - RR)).double().mean()))


def test_simpo_equals_the_formula() -> None:
    beta, gamma = 2.0, 0.5
    out = simpo_loss(PC, PR, NC, NR, beta, gamma)
    want = [-logsig(beta * (float(PC[i] / NC[i]) - float(PR[i] / NR[i])) - gamma) for i in range(6)]
    torch.testing.assert_close(
        out.losses, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-6
    )


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown DPO loss"):
        dpo_loss(PC, PR, RC, RR, kind="kto")
    with pytest.raises(ConfigError, match="response lengths"):
        dpo_loss(PC, PR, RC, RR, kind="ipo")
    with pytest.raises(ConfigError, match="beta"):
        simpo_loss(PC, PR, NC, NR, beta=0)


def test_packed_log_prob_sums_equal_unpacked(tiny_model) -> None:
    model = tiny_model("llama", num_layers=2)
    g = torch.Generator().manual_seed(3)
    ids = [
        torch.randint(3, 100, (int(n),), generator=g)
        for n in torch.randint(4, 20, (7,), generator=g)
    ]
    labels = [x.clone() for x in ids]
    for lab in labels:
        lab[: len(lab) // 2] = -100  # the prompt half carries no label
    rows = pack_rows([len(x) for x in ids], 40)
    batch = collate_packed(rows, ids, labels, pad_id=0)
    with torch.no_grad():
        sums, counts = packed_sequence_logps(model, batch, rows, [len(x) for x in ids])
        for i, (x, lab) in enumerate(zip(ids, labels, strict=True)):
            lp = torch.log_softmax(model(x[None]).logits[0, :-1].float(), -1)  # [T-1, V]
            keep = lab[1:] != -100
            want = lp[keep].gather(1, x[1:][keep][:, None]).sum()
            assert counts[i] == int(keep.sum())
            torch.testing.assert_close(sums[i], want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["sigmoid", "ipo", "hinge"])
def test_dpo_losses_equal_trls(kind: str, tmp_path) -> None:
    """TRL's DPOTrainer (the `bench` extra) evaluating a policy against a reference on six
    pairs, in one batch: its loss and margin equal burnish's from the same log-probs."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer

    from burnish.models import load_model
    from burnish.models.zoo import resolve_model
    from burnish.reward import LocalLogProbs

    rows = [{"prompt": [{"role": "user", "content": f"add {a}+{b}"}],
             "chosen": [{"role": "assistant", "content": f"Answer: {a + b}"}],
             "rejected": [{"role": "assistant", "content": f"Answer: {a + b + 3}"}]}
            for a, b in [(2, 3), (11, 4), (7, 8), (20, 5), (6, 6), (9, 1)]]  # fmt: skip
    policy, tok = load_model(resolve_model("ft-addition"))
    ref, _ = load_model(resolve_model("base"))
    convs = [r["prompt"] + r[side] for side in ("chosen", "rejected") for r in rows]
    lp = torch.tensor(LocalLogProbs(policy, tok)(convs), dtype=torch.float64)
    lr = torch.tensor(LocalLogProbs(ref, tok)(convs), dtype=torch.float64)
    ours = dpo_loss(lp[:6, 0], lp[6:, 0], lr[:6, 0], lr[6:, 0], BETA, kind, 0.0,
                    lp[:6, 1], lp[6:, 1]).metrics()  # fmt: skip
    cfg = TRLConfig(output_dir=str(tmp_path), loss_type=[kind], beta=BETA, report_to=[],
                    per_device_eval_batch_size=6, use_cpu=True, bf16=False,  # TRL: bf16 by default
                    disable_tqdm=True)  # fmt: skip
    data = Dataset.from_list(rows)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=cfg, train_dataset=data,
                         eval_dataset=data, processing_class=tok)  # fmt: skip
    theirs = trainer.evaluate()
    assert theirs["eval_loss"] == pytest.approx(ours["loss"], abs=1e-6, rel=1e-6)
    assert theirs["eval_rewards/margins"] == pytest.approx(ours["rewards/margins"], abs=1e-6)
