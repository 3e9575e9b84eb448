"""LAB-style synthetic data: an InstructLab taxonomy of skills and knowledge
(:mod:`burnish.sdg.taxonomy`), its knowledge documents (:mod:`burnish.sdg.documents`), flows
of teacher calls and filters (:mod:`burnish.sdg.flow`) and the teacher client
(:mod:`burnish.sdg.teacher`)."""

from burnish.lazy import lazy_attributes

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

# Loaded on first use, so importing a light submodule (e.g. burnish.sdg.mix) stays light.
_HOMES = {
    "Document": "burnish.sdg.documents",
    "chunk_text": "burnish.sdg.documents",
    "leaf_documents": "burnish.sdg.documents",
    "token_counter": "burnish.sdg.documents",
    "BUILTIN_FLOWS": "burnish.sdg.flow",
    "EmptyResultError": "burnish.sdg.flow",
    "Flow": "burnish.sdg.flow",
    "FlowStats": "burnish.sdg.flow",
    "load_flow": "burnish.sdg.flow",
    "KINDS": "burnish.sdg.taxonomy",
    "DocumentRef": "burnish.sdg.taxonomy",
    "Leaf": "burnish.sdg.taxonomy",
    "LeafIssue": "burnish.sdg.taxonomy",
    "SeedExample": "burnish.sdg.taxonomy",
    "TaxonomyError": "burnish.sdg.taxonomy",
    "changed_leaves": "burnish.sdg.taxonomy",
    "find_leaves": "burnish.sdg.taxonomy",
    "read_leaf": "burnish.sdg.taxonomy",
    "read_taxonomy": "burnish.sdg.taxonomy",
    "validate_leaf": "burnish.sdg.taxonomy",
    "Teacher": "burnish.sdg.teacher",
    "TeacherSettings": "burnish.sdg.teacher",
}

__getattr__ = lazy_attributes(__name__, _HOMES)
