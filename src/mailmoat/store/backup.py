"""A backup of a running gateway's data dir: a consistent snapshot of the SQLite record plus a copy of its files.

The result is itself a data dir: `mailmoat serve --data-dir DEST` (or any command) runs on it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailmoat.config import Settings
from mailmoat.store.db import sqlite_file

# Accepted mail not yet processed belongs to the running gateway, which will deliver it: a restored
# copy would process it a second time. The metrics files are the running processes' counters,
# started afresh with every gateway.
SKIPPED_DIRS = frozenset({"spool", "metrics"})
DB_NAME = "mailmoat.db"
# Columns that hold paths of files under the data dir (messages.raw_path, deliveries.location,
# recall_copies.location).
PATH_COLUMNS = frozenset({"raw_path", "location"})
# The SQLite database's side files are part of the snapshot the backup API takes, never copied.
_DB_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup that cannot be made (a destination that is not empty or lies inside the data dir)."""


@dataclass
class BackupReport:
    dest: Path
    database: str  # "sqlite snapshot", or why the record was not copied
    messages: int = 0  # rows in the copied record
    deliveries: int = 0
    files: int = 0
    bytes: int = 0
    vanished: int = 0  # files removed while they were being copied (Maildir moves, retention)
    skipped: list[str] = field(default_factory=list)


def _moved_paths(conn: sqlite3.Connection, moves: list[tuple[str, str]]) -> None:
    """Point the files the record names (raw copies, delivered copies, recalled copies and the
    vault) at the backup: they are stored as paths under the data dir, as the gateway wrote them."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in sorted(tables):
        columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        for column in sorted(columns & PATH_COLUMNS):
            for old, new in moves:
                old, new = old.rstrip("/") + "/", new.rstrip("/") + "/"
                # The whole value a path (raw_path, a Maildir file), or paths inside JSON ({"vault": "..."}).
                conn.execute(
                    f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) WHERE substr("{column}", 1, ?) = ?',
                    (new, len(old) + 1, len(old), old),
                )
                conn.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE instr("{column}", ?) > 0',
                    ('"' + old, '"' + new, '"' + old),
                )
    conn.commit()


def snapshot_sqlite(source: Path, dest: Path, moves: list[tuple[str, str]] | None = None) -> tuple[int, int]:
    """Copy the database with SQLite's backup API in one step: one read transaction, so the copy is
    one consistent moment, while the gateway goes on writing (WAL readers do not block writers).
    `moves`: (old prefix, new prefix) of the paths the record holds. Returns (messages, deliveries)
    counted in the copy after an integrity check."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        if moves:
            _moved_paths(dst, moves)
        check = dst.execute("PRAGMA integrity_check").fetchone()
        if not check or check[0] != "ok":
            raise BackupError(f"the copied database fails its integrity check: {check}")
        messages = dst.execute("SELECT count(*) FROM messages").fetchone()[0]
        deliveries = dst.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    finally:
        dst.close()
        src.close()
    return int(messages), int(deliveries)


def _is_maildir_tmp(d: Path) -> bool:
    """A Maildir's tmp/ holds deliveries in progress, not mail yet."""
    return d.name == "tmp" and (d.parent / "new").is_dir()


def _files(root: Path) -> Iterator[Path]:
    """Every file under the data dir but the spool, Maildirs' tmp/ and the record's own files."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not (here == root and d in SKIPPED_DIRS) and not _is_maildir_tmp(here / d)
        )
        for name in sorted(filenames):
            yield here / name


def backup(settings: Settings, dest: Path) -> BackupReport:
    """Snapshot the record and copy every file of the data dir (but the spool) into `dest`."""
    root = settings.data_path.resolve()
    dest = dest.resolve()
    if dest == root or root in dest.parents:
        raise BackupError(f"{dest} is inside the data dir {root}")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    if not root.is_dir():
        raise BackupError(f"no data dir at {root}")
    dest.mkdir(parents=True, exist_ok=True)
    db = sqlite_file(settings.db_url)
    report = BackupReport(dest=dest, database="")
    skip: set[Path] = set()
    if db is None:
        report.database = "not copied: the record is in PostgreSQL (back it up with pg_dump)"
    elif not db.is_file():
        report.database = f"not copied: no database at {db}"
    else:
        db = db.resolve()
        skip = {db, *(db.with_name(db.name + s) for s in _DB_SIDE_FILES)}
        # Paths as a gateway wrote them: made absolute, resolved, or (before 2026-12-01) as the data
        # dir was given ("var").
        given = str(Path(settings.data_dir))
        olds = dict.fromkeys([str(settings.data_path), str(root), given])
        moves = [(old, str(dest)) for old in olds if old not in (".", "")]
        report.messages, report.deliveries = snapshot_sqlite(db, dest / DB_NAME, moves)
        report.database = "sqlite snapshot" + ("" if db.parent == root else f" of {db}, written as {DB_NAME}")
    # Files after the snapshot: every raw copy and mailbox file the record names is older than it.
    for path in _files(root):
        if path in skip:
            continue
        target = dest / path.relative_to(root)
        try:
            if path.is_symlink() or not path.is_file():
                report.skipped.append(str(path.relative_to(root)))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        except FileNotFoundError:
            report.vanished += 1
            continue
        report.files += 1
        report.bytes += target.stat().st_size
    # Every Maildir whole again: an empty cur/ or tmp/ was not copied.
    for new in (dest / settings.mail_dir.relative_to(settings.data_path)).rglob("new"):
        if new.is_dir():
            for sub in ("cur", "tmp"):
                (new.parent / sub).mkdir(exist_ok=True)
    return report
