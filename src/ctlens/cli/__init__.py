"""The ``ctlens`` command line (Typer): thin wrappers that parse, call one function, format."""
