"""Deterministic Temporal workflows: they decide, activities do. No IO, no clock but workflow.now()."""
