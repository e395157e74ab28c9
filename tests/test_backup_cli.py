"""`mailmoat backup`: taken while the gateway takes mail, the copy runs as a data dir of its own (trace, release, restore a recall, serve)."""

from __future__ import annotations

import json
import smtplib
import sqlite3
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.config import Settings
from tests.support import qrmail
from tests.support.gateway import count_files, inprocess_gateway, maildir_copies, wait_for

runner = CliRunner()
ALICE, BOB = "alice@victim-corp.com", "bob@victim-corp.com"


def note(n: int) -> bytes:
    return (f"From: Carol <carol@partner.example>\r\nTo: {BOB}\r\nSubject: Minutes {n}\r\n"
            f"Message-ID: <minutes-{n}@partner.example>\r\n\r\nThe minutes of meeting {n} are below.\r\n").encode()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def recorded_paths(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT raw_path FROM messages UNION ALL SELECT location FROM deliveries "
                            "UNION ALL SELECT location FROM recall_copies").fetchall()
    return [r[0] for r in rows if r[0]]


def first_note(data_dir: Path) -> list[Path]:
    """Every file of Bob's that holds the first note, in any folder."""
    return [p for ps in maildir_copies(data_dir / "mailboxes", BOB).values() for p in ps if b"Minutes 0" in p.read_bytes()]


def test_a_backup_taken_under_load_runs_on_its_own(settings: Settings, tmp_path: Path) -> None:
    settings.server.domains = ["localhost", "victim-corp.com"]
    settings.server.workers = 0
    source, copy = settings.data_path.resolve(), (tmp_path / "backup").resolve()
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("x@sender.example", [ALICE], qrmail.stage2_spoofed_department())  # held
            c.sendmail("carol@partner.example", [BOB], note(0))
        wait_for(lambda: count_files(settings.mail_dir, BOB) == 1, what="the first note")
        # Bob's copy recalled (into the hidden folder): the backup must be able to put it back.
        code, out = cli("recall", "run", "--subject", "Minutes 0", "--yes", "--format", "json", "--data-dir", str(source))
        assert code == 0, out
        job = json.loads(out)["id"]
        assert [".MailmoatRecall" in str(p) for p in first_note(source)] == [True]

        # More mail keeps coming while the backup is taken.
        stop = threading.Event()

        def keep_sending() -> None:
            n = 1
            with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                while not stop.is_set() and n < 200:
                    c.sendmail("carol@partner.example", [BOB], note(n))
                    n += 1

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            wait_for(lambda: count_files(settings.mail_dir, BOB) >= 4, what="mail flowing")
            code, out = cli("backup", str(copy), "--format", "json", "--data-dir", str(source))
        finally:
            stop.set()
            sender.join()
        assert code == 0, out
        report = json.loads(out)
        assert report["database"] == "sqlite snapshot" and report["messages"] >= 5

    # A consistent record whose files are all in the copy, none in the source's data dir.
    assert not (copy / "spool").exists()
    paths = recorded_paths(copy / "mailmoat.db")
    assert paths and not any(str(source) in p for p in paths)
    with sqlite3.connect(copy / "mailmoat.db") as conn:
        raw_paths = [r[0] for r in conn.execute("SELECT raw_path FROM messages")]
        delivered = [r[0] for r in conn.execute(  # where they were delivered (a recalled one has moved since)
            "SELECT location FROM deliveries WHERE status = 'delivered' AND tracking_id NOT IN (SELECT tracking_id FROM recall_copies)")]
    assert len(raw_paths) == report["messages"] and all(Path(p).is_file() and str(copy) in p for p in raw_paths)
    assert delivered and all(Path(p).is_file() for p in delivered)
    code, out = cli("trace", "--format", "json", "--limit", "1000", "--data-dir", str(copy))
    assert code == 0 and len(json.loads(out)) == report["messages"]

    # The held message is released from the copy, into the copy's mailboxes only.
    code, out = cli("quarantine", "list", "--format", "json", "--data-dir", str(copy))
    (held,) = json.loads(out)["items"]
    code, out = cli("quarantine", "release", held["id"], "--data-dir", str(copy))
    assert code == 0 and f"{ALICE} delivered" in out, out
    assert count_files(copy / "mailboxes", ALICE) == 1 and count_files(source / "mailboxes", ALICE) == 0

    # The recall is restored from the copy: Bob's first note back in his inbox there, not in the source.
    code, out = cli("recall", "restore", job, "--format", "json", "--data-dir", str(copy))
    assert code == 0, out
    assert [".MailmoatRecall" in str(p) for p in first_note(copy)] == [False]
    assert [".MailmoatRecall" in str(p) for p in first_note(source)] == [True]

    # And the gateway runs on it.
    settings.data_dir = str(copy)
    before = count_files(copy / "mailboxes", BOB)
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("carol@partner.example", [BOB], note(1000))
        wait_for(lambda: count_files(copy / "mailboxes", BOB) == before + 1, what="mail delivered on the copy")

    # Restored into a new place by backing the backup up: its paths follow it there.
    restored = (tmp_path / "restored").resolve()
    code, out = cli("backup", str(restored), "--format", "json", "--data-dir", str(copy))
    assert code == 0 and json.loads(out)["messages"] == report["messages"] + 1, out
    paths = recorded_paths(restored / "mailmoat.db")
    assert all(str(restored) in p for p in paths if p.startswith("/")) and not any(str(copy) + "/" in p for p in paths)
    code, out = cli("trace", "--format", "json", "--limit", "1000", "--data-dir", str(restored))
    assert code == 0 and len(json.loads(out)) == report["messages"] + 1

    # Refused: a destination that is not empty, or inside the data dir.
    assert cli("backup", str(copy), "--data-dir", str(source))[0] == 2
    code, out = cli("backup", str(source / "b"), "--data-dir", str(source))
    assert code == 2 and "inside the data dir" in out


def test_a_gateway_on_a_relative_data_dir_records_absolute_paths(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make run` serves ./var from the checkout. The delivered and recalled copies' paths in the record
    # must not depend on the directory a later command runs in: a copy recalled in "delete" mode is
    # found again only through the vault path recorded for it, and is restored here from elsewhere.
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path / "site")
    settings.data_dir = "var"
    settings.recall.mode = "delete"
    (tmp_path / "site" / "mailmoat.toml").write_text('[recall]\nmode = "delete"\n')
    settings.server.domains = ["victim-corp.com"]
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("carol@partner.example", [BOB], note(0))
        wait_for(lambda: count_files(settings.mail_dir, BOB) == 1, what="the note")
    config = str(tmp_path / "site" / "mailmoat.toml")
    code, out = cli("recall", "run", "--subject", "Minutes 0", "--yes", "--format", "json", "--data-dir", "var", "-c", config)
    assert code == 0, out
    job = json.loads(out)["id"]
    data = tmp_path / "site" / "var"
    assert first_note(data) == [] and len(list((data / "recall-vault").iterdir())) == 1
    assert all(Path(p).is_absolute() for p in recorded_paths(data / "mailmoat.db") if not p.startswith("{"))
    monkeypatch.chdir(tmp_path)
    code, out = cli("recall", "restore", job, "--format", "json", "--data-dir", str(data), "-c", config)
    assert code == 0 and json.loads(out)["counts"].get("restored") == 1, out
    assert [".MailmoatRecall" in str(p) for p in first_note(data)] == [False]


def test_a_record_in_postgresql_is_left_to_pg_dump(settings: Settings, tmp_path: Path) -> None:
    from mailmoat.store.backup import backup

    (settings.data_path / "models").mkdir(parents=True)
    (settings.data_path / "models" / "bayes.model").write_bytes(b"model")
    (settings.data_path / "spool" / "new").mkdir(parents=True)
    (settings.data_path / "spool" / "new" / "entry").write_bytes(b"accepted, not processed")
    settings.db = "postgresql://mailmoat@127.0.0.1:1/mailmoat"  # never connected to
    report = backup(settings, tmp_path / "copy")
    assert "pg_dump" in report.database and report.messages == 0
    assert (tmp_path / "copy" / "models" / "bayes.model").read_bytes() == b"model"
    assert report.files == 1 and not (tmp_path / "copy" / "spool").exists()
