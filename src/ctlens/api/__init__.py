"""FastAPI service and the web viewer (needs the ``server`` extra).

``ctlens.api.app.create_app(settings)`` builds the application; ``ctlens serve`` runs it. Nothing heavy is
imported here, so ``import ctlens.api`` stays cheap.

Example:
    >>> import ctlens.api
    >>> ctlens.api.__name__
    'ctlens.api'
"""
