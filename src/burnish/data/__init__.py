"""Data: chat messages -> input_ids/labels, dataset preparation with cache, packing."""

from burnish.data.dataset import (
    DataReport,
    TokenizedDataset,
    default_cache_dir,
    prepare_dataset,
    tokenize_rows,
)
from burnish.data.packing import (
    PackedBatch,
    collate_packed,
    collate_padded,
    pack_rows,
    plan_minibatches,
)
from burnish.data.tokenize import IGNORE_INDEX, tokenize_conversation, validate_messages

__all__ = [
    "IGNORE_INDEX",
    "DataReport",
    "PackedBatch",
    "TokenizedDataset",
    "collate_packed",
    "collate_padded",
    "default_cache_dir",
    "pack_rows",
    "plan_minibatches",
    "prepare_dataset",
    "tokenize_conversation",
    "tokenize_rows",
    "validate_messages",
]
