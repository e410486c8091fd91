"""``python -m ctlens`` runs the command line."""

from ctlens.cli.main import app

if __name__ == "__main__":
    app(prog_name="ctlens")
