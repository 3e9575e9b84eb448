"""LAB-style synthetic data: an InstructLab taxonomy of skills and knowledge
(:mod:`burnish.sdg.taxonomy`) and its knowledge documents (:mod:`burnish.sdg.documents`)."""

from burnish.sdg.documents import Document, chunk_text, leaf_documents, token_counter
from burnish.sdg.taxonomy import (
    KINDS,
    DocumentRef,
    Leaf,
    LeafIssue,
    SeedExample,
    TaxonomyError,
    changed_leaves,
    find_leaves,
    read_leaf,
    read_taxonomy,
    validate_leaf,
)

__all__ = [
    "KINDS",
    "Document",
    "DocumentRef",
    "Leaf",
    "LeafIssue",
    "SeedExample",
    "TaxonomyError",
    "changed_leaves",
    "chunk_text",
    "find_leaves",
    "leaf_documents",
    "read_leaf",
    "read_taxonomy",
    "token_counter",
    "validate_leaf",
]
