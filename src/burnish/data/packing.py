"""Padding-free packing: sequences -> rows of concatenated sequences -> minibatches.

A packed row holds several whole sequences back to back. ``position_ids`` restart at 0 for
each sequence and the attention mask is block-diagonal causal, so every sequence sees only
itself: a packed batch gives the same logits as running the sequences one by one (proved by
tests). Labels are shifted *per sequence* so no token is ever trained to predict across a
boundary.

With sdpa or eager attention transformers does not infer sequence boundaries from
``position_ids`` on CPU, so the batch carries its own 4-D additive mask ``[R, 1, L, L]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from burnish.data.tokenize import IGNORE_INDEX

__all__ = [
    "PackedBatch",
    "collate_packed",
    "collate_padded",
    "left_pad_prompts",
    "left_pad_tensor",
    "pack_rows",
    "plan_minibatches",
]


@dataclass
class PackedBatch:
    """One forward/backward unit.

    input_ids, position_ids, shift_labels: [R, L]; attention_mask: [R, 1, L, L] additive
    (0 where attending is allowed, dtype-min elsewhere) or None for a plain causal batch.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    shift_labels: torch.Tensor
    attention_mask: torch.Tensor | None
    real_tokens: int  # non-padding tokens in the batch
    loss_tokens: int  # positions with a label

    @property
    def padding_share(self) -> float:
        total = self.input_ids.numel()
        return 1.0 - self.real_tokens / total if total else 0.0

    def to(self, device: torch.device | str) -> PackedBatch:
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return PackedBatch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.shift_labels.to(device),
            mask,
            self.real_tokens,
            self.loss_tokens,
        )


def pack_rows(lengths: list[int], row_len: int) -> list[list[int]]:
    """First-fit-decreasing bin packing of sequence indices into rows of <= row_len tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = lengths[i]
        if n > row_len:
            raise ValueError(f"sequence {i} has {n} tokens, more than a row ({row_len})")
        slot = next((r for r, f in enumerate(free) if f >= n), None)
        if slot is None:
            rows.append([i])
            free.append(row_len - n)
        else:
            rows[slot].append(i)
            free[slot] -= n
    return rows


def plan_minibatches(
    lengths: list[int], row_len: int, max_tokens_per_step: int
) -> list[list[list[int]]]:
    """Pack sequences into rows, then group rows into minibatches.

    A minibatch of R rows padded to its longest row L holds at most ``max_tokens_per_step``
    slots (R * L); ``row_len`` must not exceed it (ValueError), so the bound always holds.
    Returns minibatches as lists of rows of sequence indices (indices into ``lengths``).
    """
    if row_len > max_tokens_per_step:
        raise ValueError(
            f"rows of {row_len} tokens cannot fit minibatches of {max_tokens_per_step} slots"
        )
    rows = pack_rows(lengths, row_len)
    used = [sum(lengths[i] for i in r) for r in rows]
    order = sorted(range(len(rows)), key=lambda r: -used[r])
    batches: list[list[list[int]]] = []
    current: list[int] = []
    for r in order:
        longest = used[current[0]] if current else used[r]
        if current and (len(current) + 1) * longest > max_tokens_per_step:
            batches.append([rows[c] for c in current])
            current = []
        current.append(r)
    if current:
        batches.append([rows[c] for c in current])
    return batches


def _shifted(labels: torch.Tensor) -> torch.Tensor:
    # [T] -> [T]: position t holds the target of the prediction made at t (label of t + 1).
    out = torch.full_like(labels, IGNORE_INDEX)
    out[:-1] = labels[1:]
    return out


def collate_packed(
    rows: list[list[int]],
    input_ids: list[torch.Tensor],
    labels: list[torch.Tensor],
    pad_id: int,
    mask_dtype: torch.dtype = torch.float32,
) -> PackedBatch:
    """Build a packed batch from rows of sequence indices (block-diagonal causal mask)."""
    L = max(sum(len(input_ids[i]) for i in row) for row in rows)
    R = len(rows)
    ids = torch.full((R, L), pad_id, dtype=torch.long)
    pos = torch.zeros((R, L), dtype=torch.long)
    tgt = torch.full((R, L), IGNORE_INDEX, dtype=torch.long)
    seg = torch.full((R, L), -1, dtype=torch.long)  # segment id per slot; -1 = padding
    real = 0
    for r, row in enumerate(rows):
        t = 0
        for s, i in enumerate(row):
            n = len(input_ids[i])
            ids[r, t : t + n] = input_ids[i]
            pos[r, t : t + n] = torch.arange(n)
            tgt[r, t : t + n] = _shifted(labels[i])
            seg[r, t : t + n] = s
            t += n
        real += t
    same = seg[:, :, None] == seg[:, None, :]  # [R, L, L]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    allowed = (same & causal & (seg[:, :, None] >= 0)) | torch.eye(L, dtype=torch.bool)
    mask = torch.zeros(R, 1, L, L, dtype=mask_dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(mask_dtype).min)
    return PackedBatch(ids, pos, tgt, mask, real, int((tgt != IGNORE_INDEX).sum()))


def collate_padded(
    indices: list[int], input_ids: list[torch.Tensor], labels: list[torch.Tensor], pad_id: int
) -> PackedBatch:
    """The conventional baseline: one sequence per row, right-padded to the longest.

    Uses the model's own causal mask (attention_mask=None); padding sits after each sequence,
    so it never influences real tokens and carries no labels.
    """
    L = max(len(input_ids[i]) for i in indices)
    ids = torch.full((len(indices), L), pad_id, dtype=torch.long)
    tgt = torch.full((len(indices), L), IGNORE_INDEX, dtype=torch.long)
    real = 0
    for r, i in enumerate(indices):
        n = len(input_ids[i])
        ids[r, :n] = input_ids[i]
        tgt[r, :n] = _shifted(labels[i])
        real += n
    pos = torch.arange(L).expand(len(indices), L).clone()
    return PackedBatch(ids, pos, tgt, None, real, int((tgt != IGNORE_INDEX).sum()))


def left_pad_prompts(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists as a left-padded batch for generation: ``ids [B, L]`` (``pad_id`` in
    front) and ``mask [B, L]`` (1 = real token), ``L`` = the longest sequence."""
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, longest - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[r, longest - len(s) :] = 1
    return ids, mask


def left_pad_tensor(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Zero-pad ``x`` on the left of ``dim`` up to ``length`` (unchanged if already as long)."""
    missing = length - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)
