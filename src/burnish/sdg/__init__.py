"""LAB-style synthetic data: an InstructLab taxonomy of skills and knowledge
(:mod:`burnish.sdg.taxonomy`), its knowledge documents (:mod:`burnish.sdg.documents`), flows
of teacher calls and filters (:mod:`burnish.sdg.flow`) and the teacher client
(:mod:`burnish.sdg.teacher`)."""

from burnish.sdg.documents import Document, chunk_text, leaf_documents, token_counter
from burnish.sdg.flow import BUILTIN_FLOWS, EmptyResultError, Flow, FlowStats, load_flow
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
from burnish.sdg.teacher import Teacher, TeacherSettings

__all__ = [
    "BUILTIN_FLOWS",
    "KINDS",
    "Document",
    "DocumentRef",
    "EmptyResultError",
    "Flow",
    "FlowStats",
    "Leaf",
    "LeafIssue",
    "SeedExample",
    "TaxonomyError",
    "Teacher",
    "TeacherSettings",
    "changed_leaves",
    "chunk_text",
    "find_leaves",
    "leaf_documents",
    "load_flow",
    "read_leaf",
    "read_taxonomy",
    "token_counter",
    "validate_leaf",
]
