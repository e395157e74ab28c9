"""Raw-message blob stores: a (shared) directory and PostgreSQL large objects; old plain paths still read."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mailmoat.blobstore import (
    PG_PREFIX,
    FileBlobStore,
    PgBlobStore,
    open_blobstore,
    purge_postgres,
    read_blob,
)
from mailmoat.config import Settings
from mailmoat.model import Action, Envelope, Verdict
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from tests.support.pg import pg_url  # noqa: F401  (fixture)


def _env(i: int = 0) -> Envelope:
    return Envelope(id=f"01BLOB{i:020d}", mail_from="a@example.org", rcpt_tos=["b@localhost"], received_at=time.time())


def test_file_store_roundtrip_and_plain_paths(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "shared")
    env = _env()
    ref = blobs.put(env, b"raw message")
    assert Path(ref).is_absolute() and blobs.put(env, b"raw message") == ref  # same message, same blob
    assert read_blob(ref) == b"raw message"
    old = tmp_path / "old.eml"  # a raw_path written before blob stores existed
    old.write_bytes(b"old")
    assert read_blob(str(old)) == b"old"
    blobs.delete(ref)
    assert read_blob(ref) is None and read_blob("") is None
    assert read_blob(PG_PREFIX + "12") is None  # a large object without a PostgreSQL engine: just gone


def test_open_blobstore_settings(tmp_path: Path) -> None:
    s = Settings()
    s.data_dir = str(tmp_path)
    assert isinstance(open_blobstore(s), FileBlobStore)
    s.blobs.backend = "postgres"
    with pytest.raises(ValueError):
        open_blobstore(s)
    s.blobs.backend = "s3"
    with pytest.raises(ValueError, match=r"blobs\.backend"):
        open_blobstore(s)


@pytest.mark.postgres
def test_postgres_large_objects(pg_url: str) -> None:  # noqa: F811
    store = Store(pg_url)
    try:
        blobs = PgBlobStore(store.engine)
        env = _env(1)
        ref = blobs.put(env, b"\x00binary\xffraw")
        assert ref.startswith(PG_PREFIX)
        assert read_blob(ref, store.engine) == b"\x00binary\xffraw"
        store.ensure_message(env, Verdict(Action.DELIVER, 0.0, [], []))
        store.set_message_fields(env.id, raw_path=ref, received_at=time.time() - 40 * 86400)
        assert blobs.put(env, b"\x00binary\xffraw") == ref  # a retry reuses the object
        assert purge_postgres(store.engine, 30) == 1
        assert read_blob(ref, store.engine) is None
        row = store.get_message(env.id)
        assert isinstance(row, MessageRow) and row.raw_path == ""
    finally:
        store.close()


def test_retention_purges_a_shared_blob_directory_too(tmp_path: Path) -> None:
    from mailmoat.store.retention import purge_everywhere

    s = Settings()
    s.data_dir = str(tmp_path / "var")
    s.blobs.path = str(tmp_path / "shared")
    store = Store(s.db_url, raw_dir=s.raw_dir)
    try:
        env = _env(2)
        ref = open_blobstore(s).put(env, b"old raw")
        store.ensure_message(env, Verdict(Action.DELIVER, 0.0, [], []))
        store.set_message_fields(env.id, raw_path=ref)
        old = time.time() - 40 * 86400
        os.utime(ref, (old, old))
        assert purge_everywhere(store, s).files == 1
        assert read_blob(ref) is None and store.get_message(env.id).raw_path == ""  # type: ignore[union-attr]
    finally:
        store.close()


@pytest.mark.postgres
def test_retention_purges_large_objects(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    from mailmoat.store.retention import purge_everywhere

    s = Settings()
    s.data_dir = str(tmp_path)
    s.db = pg_url
    s.blobs.backend = "postgres"
    store = Store(pg_url, raw_dir=s.raw_dir)
    try:
        env = _env(3)
        ref = PgBlobStore(store.engine).put(env, b"old raw")
        store.ensure_message(env, Verdict(Action.DELIVER, 0.0, [], []))
        store.set_message_fields(env.id, raw_path=ref, received_at=time.time() - 40 * 86400)
        assert purge_everywhere(store, s).files == 1
        assert read_blob(ref, store.engine) is None
    finally:
        store.close()
