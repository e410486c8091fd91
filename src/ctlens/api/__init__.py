"""FastAPI service and the web viewer (needs the ``server`` extra).

``ctlens.api.app.create_app(settings)`` builds the application; ``ctlens serve`` runs it. Nothing heavy is
imported here, so ``import ctlens.api`` stays cheap.

Inside, top to bottom (the import-linter contracts keep the first two steps): ``app`` includes the routers of
``routes/`` (one module per resource, independent of each other); handlers take typed dependencies from ``deps``
(``Ctx``, ``Caller``, ``OwnedStudy``, ``ReadyStudy``) and call one service function: ``intake`` (new content:
cached, joined, queued or analysed now), ``studies``, ``jobs``, ``exports``, ``answers`` and ``chat``,
``images``, ``archive``. Those build on ``processing`` and ``services`` (the calls into the layers below),
``uploads``, ``artifacts``, ``store``, and the shared ``context``; ``schemas`` holds the bodies and ``problems``
the error answers.

Example:
    >>> import ctlens.api
    >>> ctlens.api.__name__
    'ctlens.api'
"""
