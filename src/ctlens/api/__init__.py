"""FastAPI service and the web viewer (needs the `server` extra)."""
