"""Service logs carry no series descriptions: a logging filter cleans series labels in every ctlens record.

The readers name a series by its label (``#0 'description' (CT, axial, ...)``) in messages; the service installs
:class:`SeriesLabelFilter` on the ``ctlens`` loggers (:func:`install`), which formats each record and cleans the
description inside every label (:func:`ctlens.io.uid_hash.clean_series_labels`, PS3.15 Clean Descriptors) before
any handler writes it.

Example:
    >>> import logging
    >>> record = logging.LogRecord("ctlens.io", logging.INFO, "x", 1, "%s", ("picked #0 'Doe CHEST' "
    ...     "(CT, axial, 8 slices 32x32, kernel B30f)",), None)
    >>> SeriesLabelFilter().filter(record), record.getMessage()
    (True, "picked #0 'CHEST' (CT, axial, 8 slices 32x32, kernel B30f)")
"""

from __future__ import annotations

import logging

from ctlens.io.uid_hash import clean_series_labels

LOGGERS = ("ctlens", "ctlens.io", "ctlens.api", "ctlens.analysis", "ctlens.codec", "ctlens.llm")


class SeriesLabelFilter(logging.Filter):
    """Rewrite a record's message with its series labels cleaned (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format: leave it to the handler's own error reporting
            return True
        if "'" in message:
            record.msg, record.args = clean_series_labels(message), None
        return True


def install() -> None:
    """Add the filter to the ctlens loggers (those named in :data:`LOGGERS` and any ``ctlens.*`` made so far).

    Example:
        >>> install(); install()
        >>> sum(isinstance(f, SeriesLabelFilter) for f in logging.getLogger("ctlens.io").filters)
        1
    """
    names = set(LOGGERS) | {name for name in logging.root.manager.loggerDict if name.startswith("ctlens.")}
    for name in sorted(names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, SeriesLabelFilter) for f in logger.filters):
            logger.addFilter(SeriesLabelFilter())
