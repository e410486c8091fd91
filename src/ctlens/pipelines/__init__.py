"""Inference pipelines: slice interpolation, embeddings, zero-shot findings."""
