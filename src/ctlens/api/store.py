"""The service's embedded state: one SQLite file (WAL) for studies, jobs, cache entries, API keys, audit, chats.

Every process and thread opens its own connection to the same file, so several uvicorn workers share the
state; a job is *claimed* by one worker in one ``BEGIN IMMEDIATE`` transaction and kept alive by heartbeats,
so when that worker dies another one takes the job over after ``lease`` seconds. A content being analysed
(``processing``) records the process that claimed it (``worker``, the token of
:class:`ctlens.api.recovery.ProcessMark`), so a sweep can tell an analysis that died with its process from one
that is still running. Deleted rows are overwritten (``secure_delete``) and :meth:`Store.checkpoint` empties the
write-ahead log, so a deleted study's values do not linger in the database files.

Example:
    >>> import tempfile, pathlib
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "ctlens.sqlite3")
    >>> key_id = store.add_key("alice", "hash-of-key")
    >>> store.key_by_hash("hash-of-key")["name"]
    'alice'
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, created REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS contents (
    sha256 TEXT PRIMARY KEY, status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0, result TEXT, error TEXT, error_status INTEGER, worker TEXT);
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, sha256 TEXT NOT NULL, created REAL NOT NULL,
    UNIQUE (owner, sha256));
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, study_id TEXT NOT NULL, sha256 TEXT NOT NULL,
    state TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
    error TEXT, error_status INTEGER, params TEXT NOT NULL DEFAULT '{}', worker TEXT, heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, key_id TEXT NOT NULL, action TEXT NOT NULL,
    study_id TEXT, detail TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, study_id TEXT NOT NULL, owner TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, usage TEXT, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_study ON messages (study_id, id);
"""

MAX_JOB_ATTEMPTS = 3


def new_id(prefix: str) -> str:
    """A random, URL-safe id such as ``st_3f9a...`` (no meaning, nothing derived from the data)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class Store:
    """Thread-safe access to the SQLite database at ``path`` (created with its tables when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.worker: str | None = None
        """Token of the process using this store (set by the service); recorded on the contents it claims."""
        with self._conn() as conn:
            conn.executescript(SCHEMA)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(contents)")}
            if "worker" not in columns:  # a database made before the column existed
                conn.execute("ALTER TABLE contents ADD COLUMN worker TEXT")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")  # deleted values are overwritten, not left in free pages
            self._local.conn = conn
        return conn

    def _one(self, sql: str, args: tuple = ()) -> dict[str, Any] | None:
        row = self._conn().execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self._conn().execute(sql, args).fetchall()]

    def _exec(self, sql: str, args: tuple = ()) -> int:
        return self._conn().execute(sql, args).rowcount

    def ping(self) -> None:
        """One trivial query: raises when the database cannot be used (the readiness check)."""
        self._conn().execute("SELECT 1").fetchone()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database and truncate it (after deletions: no old values linger)."""
        self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def journal_mode(self) -> str:
        """``wal`` when write-ahead logging is on."""
        return str(self._conn().execute("PRAGMA journal_mode").fetchone()[0])

    # --- API keys ------------------------------------------------------------------------------------------
    def add_key(self, name: str, key_hash: str) -> str:
        """Store a key by its hash; return the key's id."""
        key_id = new_id("key")
        self._exec(
            "INSERT INTO api_keys (id, name, key_hash, created) VALUES (?, ?, ?, ?)",
            (key_id, name, key_hash, time.time()),
        )
        return key_id

    def key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """The active key with this hash, or None."""
        return self._one("SELECT id, name, created FROM api_keys WHERE key_hash = ? AND revoked = 0", (key_hash,))

    def count_keys(self) -> int:
        """Number of active keys."""
        return int(self._conn().execute("SELECT count(*) FROM api_keys WHERE revoked = 0").fetchone()[0])

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; True if it existed."""
        return self._exec("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,)) > 0

    # --- content cache (keyed by SHA-256 of the uploaded bytes) ----------------------------------------------
    def content(self, sha256: str) -> dict[str, Any] | None:
        """The cache entry for this content hash, with ``result`` decoded from JSON."""
        row = self._one("SELECT * FROM contents WHERE sha256 = ?", (sha256,))
        if row and row["result"]:
            row["result"] = json.loads(row["result"])
        return row

    def claim_content(self, sha256: str, nbytes: int) -> bool:
        """Create a ``processing`` entry; False when the content is already known (ready or in progress).

        A ``failed`` entry is replaced, so the same bytes can be tried again after a fix.
        """
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT status FROM contents WHERE sha256 = ?", (sha256,)).fetchone()
            if row is not None and row["status"] != "failed":
                conn.execute("COMMIT")
                return False
            conn.execute(
                "INSERT OR REPLACE INTO contents (sha256, status, created, updated, bytes, worker) "
                "VALUES (?, 'processing', ?, ?, ?, ?)",
                (sha256, now, now, nbytes, self.worker),
            )
            conn.execute("COMMIT")
            return True
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def finish_content(self, sha256: str, result: dict[str, Any]) -> None:
        """Mark the content ready with its analysis result."""
        self._exec(
            "UPDATE contents SET status = 'ready', result = ?, error = NULL, updated = ? WHERE sha256 = ?",
            (json.dumps(result), time.time(), sha256),
        )

    def fail_content(self, sha256: str, error: str, status: int) -> None:
        """Mark the content failed with a one-line reason (no PHI: reasons name no uploaded file)."""
        self._exec(
            "UPDATE contents SET status = 'failed', error = ?, error_status = ?, updated = ? WHERE sha256 = ?",
            (error, status, time.time(), sha256),
        )

    def drop_content(self, sha256: str) -> None:
        """Forget a cache entry."""
        self._exec("DELETE FROM contents WHERE sha256 = ?", (sha256,))

    def processing_contents(self) -> list[dict[str, Any]]:
        """Contents marked ``processing`` (hash, claiming worker, last update): candidates for a recovery sweep."""
        return self._all("SELECT sha256, worker, updated FROM contents WHERE status = 'processing'")

    def content_hashes(self) -> set[str]:
        """The hashes of every content row (any status)."""
        return {row["sha256"] for row in self._all("SELECT sha256 FROM contents")}

    # --- studies -----------------------------------------------------------------------------------------
    def study_for(self, owner: str, sha256: str) -> dict[str, Any]:
        """The owner's study of this content, created if missing (the same bytes give the same study)."""
        row = self._one("SELECT * FROM studies WHERE owner = ? AND sha256 = ?", (owner, sha256))
        if row is not None:
            return row
        self._exec(
            "INSERT OR IGNORE INTO studies (id, owner, sha256, created) VALUES (?, ?, ?, ?)",
            (new_id("st"), owner, sha256, time.time()),
        )
        return self._one("SELECT * FROM studies WHERE owner = ? AND sha256 = ?", (owner, sha256))  # type: ignore

    def study(self, owner: str, study_id: str) -> dict[str, Any] | None:
        """The study if it belongs to ``owner`` (another key's study is simply not found)."""
        return self._one("SELECT * FROM studies WHERE id = ? AND owner = ?", (study_id, owner))

    def studies(self, owner: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """The owner's studies, newest first."""
        return self._all(
            "SELECT s.*, c.status, c.error, c.result FROM studies s LEFT JOIN contents c ON c.sha256 = s.sha256 "
            "WHERE s.owner = ? ORDER BY s.created DESC LIMIT ? OFFSET ?",
            (owner, limit, offset),
        )

    def delete_study(self, owner: str, study_id: str) -> str | None:
        """Delete the study and its chat; return its content hash when no other study uses it any more."""
        row = self.study(owner, study_id)
        if row is None:
            return None
        self._exec("DELETE FROM studies WHERE id = ?", (study_id,))
        self._exec("DELETE FROM messages WHERE study_id = ?", (study_id,))
        left = self._conn().execute("SELECT count(*) FROM studies WHERE sha256 = ?", (row["sha256"],)).fetchone()[0]
        return row["sha256"] if left == 0 else ""

    # --- jobs --------------------------------------------------------------------------------------------
    def add_job(self, owner: str, study_id: str, sha256: str, params: dict[str, Any]) -> str:
        """Queue a job; return its id."""
        job_id, now = new_id("job"), time.time()
        self._exec(
            "INSERT INTO jobs (id, owner, study_id, sha256, state, params, created, updated) "
            "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            (job_id, owner, study_id, sha256, json.dumps(params), now, now),
        )
        return job_id

    def job(self, job_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The job (only the owner's when ``owner`` is given)."""
        if owner is None:
            return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._one("SELECT * FROM jobs WHERE id = ? AND owner = ?", (job_id, owner))

    def job_for_content(self, sha256: str) -> dict[str, Any] | None:
        """The newest job working on this content."""
        return self._one("SELECT * FROM jobs WHERE sha256 = ? ORDER BY created DESC LIMIT 1", (sha256,))

    def active_jobs(self) -> list[dict[str, Any]]:
        """Jobs queued or running: their staged files are kept (``fail_exhausted_jobs`` ends exhausted ones)."""
        return self._all("SELECT * FROM jobs WHERE state IN ('queued', 'running')")

    def remove_jobs_for_content(self, sha256: str) -> list[dict[str, Any]]:
        """Delete every job of the content (a worker still running one finds no row to update); return them."""
        jobs = self._all("SELECT * FROM jobs WHERE sha256 = ?", (sha256,))
        self._exec("DELETE FROM jobs WHERE sha256 = ?", (sha256,))
        return jobs

    def claim_job(self, worker: str, lease: float) -> dict[str, Any] | None:
        """Atomically take the oldest queued job, or a running one whose worker stopped sending heartbeats."""
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT * FROM jobs WHERE (state = 'queued' OR (state = 'running' AND heartbeat < ?)) "
                "AND attempts < ? ORDER BY created LIMIT 1",
                (now - lease, MAX_JOB_ATTEMPTS),
            ).fetchone()
            if row is None:
                conn.execute("COMMIT")
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', worker = ?, heartbeat = ?, attempts = attempts + 1, "
                "updated = ? WHERE id = ?",
                (worker, now, now, row["id"]),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        job = dict(row)
        job.update(state="running", worker=worker, attempts=job["attempts"] + 1)
        return job

    def heartbeat(self, job_id: str, worker: str, progress: float | None = None, message: str | None = None) -> bool:
        """Keep the claim alive (and report progress); False if another worker has taken the job over."""
        now = time.time()
        return (
            self._exec(
                "UPDATE jobs SET heartbeat = ?, updated = ?, progress = COALESCE(?, progress), "
                "message = COALESCE(?, message) WHERE id = ? AND worker = ? AND state = 'running'",
                (now, now, progress, message, job_id, worker),
            )
            > 0
        )

    def finish_job(self, job_id: str, worker: str, error: str | None = None, status: int | None = None) -> None:
        """Mark the job done (or failed with a one-line reason)."""
        state = "failed" if error else "done"
        self._exec(
            "UPDATE jobs SET state = ?, progress = 1, error = ?, error_status = ?, updated = ?, "
            "message = ? WHERE id = ? AND worker = ?",
            (state, error, status, time.time(), state, job_id, worker),
        )

    def fail_exhausted_jobs(self, lease: float = 3600.0) -> list[dict[str, Any]]:
        """Jobs whose workers died ``MAX_JOB_ATTEMPTS`` times are marked failed, their contents too; return them.

        A job is exhausted when it ran ``MAX_JOB_ATTEMPTS`` times and its last worker has sent no heartbeat for
        ``lease`` seconds (``claim_job`` no longer takes it, so nothing else would ever end it). Its content is
        marked failed, so the same bytes can be uploaded again.
        """
        now = time.time()
        jobs = self._all(
            "SELECT * FROM jobs WHERE state = 'running' AND attempts >= ? AND heartbeat < ?",
            (MAX_JOB_ATTEMPTS, now - lease),
        )
        reason = "the job stopped its worker too often"
        for job in jobs:
            self._exec(
                "UPDATE jobs SET state = 'failed', error = ?, error_status = 500, updated = ? "
                "WHERE id = ? AND state = 'running'",
                (reason, now, job["id"]),
            )
            self._exec(
                "UPDATE contents SET status = 'failed', error = ?, error_status = 500, updated = ? "
                "WHERE sha256 = ? AND status = 'processing'",
                (reason, now, job["sha256"]),
            )
        return jobs

    # --- audit log and conversations ---------------------------------------------------------------------
    def audit(self, key_id: str, action: str, study_id: str | None = None, detail: str = "") -> None:
        """Record who read or exported which study (never the data itself)."""
        self._exec(
            "INSERT INTO audit (ts, key_id, action, study_id, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), key_id, action, study_id, detail),
        )

    def audit_log(self, key_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The key's own audit entries, newest first."""
        return self._all("SELECT * FROM audit WHERE key_id = ? ORDER BY id DESC LIMIT ?", (key_id, limit))

    def add_message(self, study_id: str, owner: str, role: str, content: str, usage: dict | None = None) -> None:
        """Append one turn to the study's conversation."""
        self._exec(
            "INSERT INTO messages (study_id, owner, role, content, usage, created) VALUES (?, ?, ?, ?, ?, ?)",
            (study_id, owner, role, content, json.dumps(usage) if usage else None, time.time()),
        )

    def messages(self, study_id: str, owner: str, limit: int = 40) -> list[dict[str, Any]]:
        """The latest ``limit`` turns of the study's conversation, oldest first."""
        rows = self._all(
            "SELECT role, content, usage, created FROM messages WHERE study_id = ? AND owner = ? "
            "ORDER BY id DESC LIMIT ?",
            (study_id, owner, limit),
        )
        for row in rows:
            row["usage"] = json.loads(row["usage"]) if row["usage"] else None
        return rows[::-1]
