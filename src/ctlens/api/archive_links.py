"""Which of the service's studies came from the DICOM archive, and from which archive study and series.

This is the only thing the service keeps about an archive study besides the de-identified analysis that any
upload gets: the archive's Study and Series Instance UIDs, per study row (so per API key). They are kept because
sending results back (``POST /api/studies/{id}/archive``) must name the archive series the SEG / SR refer to,
and must fetch that series' headers again at send time, so that the service never has to store the patient's
name, ID or other header values. The table lives in the service's SQLite file next to ``studies``; a trigger
removes a study's link when the study is deleted, so a deleted study leaves no archive identifiers behind.

Example:
    >>> import tempfile, pathlib
    >>> from ctlens.api.store import Store
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "db.sqlite3")
    >>> links = ArchiveLinks(store.path)
    >>> study = store.study_for("key_1", "a" * 64)
    >>> links.link(study["id"], "key_1", "1.2.3", "1.2.3.4")
    >>> links.get(study["id"], "key_1").series_uid, links.get(study["id"], "key_2")
    ('1.2.3.4', None)
    >>> _ = store.delete_study("key_1", study["id"])
    >>> links.get(study["id"], "key_1") is None
    True
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS archive_links (
    study_id TEXT PRIMARY KEY, owner TEXT NOT NULL, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS archive_links_forget AFTER DELETE ON studies
BEGIN DELETE FROM archive_links WHERE study_id = OLD.id; END;
"""


@dataclass(frozen=True)
class ArchiveLink:
    """Where one study came from: the archive's Study and Series Instance UIDs."""

    study_id: str
    study_uid: str
    series_uid: str


class ArchiveLinks:
    """The ``archive_links`` table in the service database at ``path`` (created, with its trigger, when missing).

    The database must already hold the ``studies`` table (:class:`ctlens.api.store.Store` creates it).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def link(self, study_id: str, owner: str, study_uid: str, series_uid: str) -> None:
        """Record (or replace) where the owner's study came from."""
        self._conn().execute(
            "INSERT OR REPLACE INTO archive_links (study_id, owner, study_uid, series_uid, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (study_id, owner, study_uid, series_uid, time.time()),
        )

    def get(self, study_id: str, owner: str) -> ArchiveLink | None:
        """The study's link if the study is the owner's and came from the archive, else None."""
        row = (
            self._conn()
            .execute(
                "SELECT study_id, study_uid, series_uid FROM archive_links WHERE study_id = ? AND owner = ?",
                (study_id, owner),
            )
            .fetchone()
        )
        return ArchiveLink(*row) if row is not None else None


_OPEN: dict[str, ArchiveLinks] = {}
_OPEN_LOCK = threading.Lock()


def links_for(store_path: str | Path) -> ArchiveLinks:
    """The process's :class:`ArchiveLinks` for a service database (the table is created once per process)."""
    key = str(Path(store_path).resolve())
    with _OPEN_LOCK:
        links = _OPEN.get(key)
        if links is None:
            links = _OPEN[key] = ArchiveLinks(key)
        return links
