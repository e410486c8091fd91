"""Facades of the original systems in ``../shared/seeds/``: their interfaces, as their users know them, as thin
layers over ctlens.

Each module is named after the original's module and only translates: it parses the original's arguments, calls
one ctlens function below it and returns the original's shapes. Like ``ctlens.api`` and ``ctlens.cli``, nothing in
ctlens imports this package.

- :mod:`ctlens.compat.ct_compression`: ``CTScanCompressor`` (seed 000, CT scan compression for LLM APIs) over
  :mod:`ctlens.codec` and :func:`ctlens.llm.payload.build_payload`.
"""
