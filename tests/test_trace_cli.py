"""`mailmoat trace`: filters, relative and ISO times, text and JSON output."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.model import Action, Address, Envelope, Finding, Message, Verdict
from mailmoat.recall.selection import parse_time as parse_when
from mailmoat.store.db import Store

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "var"
    store = Store(f"sqlite:///{d / 'mailmoat.db'}")
    now = time.time()
    rows = [
        ("ceo@example.org", "Wire transfer today", Action.QUARANTINE, 12.0, now - 2 * 86400),
        ("news@example.net", "Weekly newsletter", Action.DELIVER, 0.3, now - 3600),
    ]
    for sender, subject, action, score, when in rows:
        env = Envelope(sender, ["bob@localhost"], received_at=when)
        msg = Message(subject=subject, from_=Address("", sender), message_id=f"<{int(when)}@x>")
        store.record_message(env, msg, Verdict(action, score, [Finding("SOME_SYMBOL", score)]), "")
        status = "held" if action == Action.QUARANTINE else "delivered"
        store.claim(env.id, [(0, "bob@localhost", "bob@localhost", env.tracking_id(0))], lease_until=0, initial=status)
    store.close()
    return d


def run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["trace", "--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


def test_parse_when() -> None:
    now = 1_800_000_000.0
    assert parse_when("3d", now) == now - 3 * 86400
    assert parse_when("12h", now) == now - 12 * 3600
    assert parse_when("30m", now) == now - 1800
    assert parse_when("2026-01-02T03:04:05Z") == 1767323045.0
    with pytest.raises(ValueError):
        parse_when("yesterday")


def test_trace_json_filters(data_dir: Path) -> None:
    code, out = run(data_dir, "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert [r["subject"] for r in rows] == ["Weekly newsletter", "Wire transfer today"]
    code, out = run(data_dir, "--format", "json", "--since", "1d")
    assert [r["subject"] for r in json.loads(out)] == ["Weekly newsletter"]
    code, out = run(data_dir, "--format", "json", "--action", "quarantine", "--sender", "CEO@")
    (row,) = json.loads(out)
    assert row["action"] == "quarantine" and row["deliveries"][0]["status"] == "held"
    assert row["deliveries"][0]["tracking_id"].startswith(row["id"])
    code, out = run(data_dir, "--format", "json", "--rcpt", "nobody@")
    assert json.loads(out) == []


def test_trace_text_table(data_dir: Path) -> None:
    code, out = run(data_dir, "--subject", "newsletter")
    assert code == 0, out
    assert "Weekly newsletter" in out and "delivered" in out and "1 message(s)" in out
    code, out = run(data_dir, "--subject", "no such thing")
    assert code == 0 and "no matching messages" in out


def test_trace_bad_options(data_dir: Path) -> None:
    code, out = run(data_dir, "--since", "last tuesday")
    assert code == 2 and "3d" in out
    code, out = run(data_dir, "--format", "xml")
    assert code == 2


def test_text_from_mail_is_printed_as_written_never_as_markup(tmp_path: Path) -> None:
    # A subject is the sender's text: "[/b]" read as console markup would end the command with an error.
    d = tmp_path / "var"
    store = Store(f"sqlite:///{d / 'mailmoat.db'}")
    env = Envelope("billing@example.net", ["bob@localhost"])
    msg = Message(subject="Invoice [/b] due [bold red]now", from_=Address("", "billing@example.net"))
    store.record_message(env, msg, Verdict(Action.QUARANTINE, 12.0, [Finding("SOME_SYMBOL", 12.0, "[/i] in the evidence")]), "")
    store.close()
    code, out = run(d)
    assert code == 0 and "Invoice [/b] due [bold red]now" in out, out
    for args in (["list"], ["show", env.id]):
        result = runner.invoke(app, ["quarantine", *args, "--data-dir", str(d)])
        assert result.exit_code == 0 and "Invoice [/b] due [bold red]now" in result.output, result.output
    assert "[/i] in the evidence" in result.output


def test_text_from_mail_never_reaches_the_terminal_as_control_sequences(tmp_path: Path) -> None:
    # A subject may decode to ESC sequences (colours, the window title, the clipboard) or to a bidi
    # override that shows the text reversed: printed, they are written out instead.
    d = tmp_path / "var"
    store = Store(f"sqlite:///{d / 'mailmoat.db'}")
    env = Envelope("billing@example.net", ["bob@localhost"])
    subject = "Invoice \x1b]0;owned\x07 \x1b[8mhidden \u202edesrever"
    store.record_message(env, Message(subject=subject, from_=Address("", "billing@example.net")), Verdict(Action.QUARANTINE, 12.0), "")
    store.close()
    for args in (["trace"], ["quarantine", "list"], ["quarantine", "show", env.id]):
        result = runner.invoke(app, [*args, "--data-dir", str(d)])
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\u202e" not in result.output and "\x07" not in result.output
        assert "Invoice \\x1b]0;owned\\x07 \\x1b[8mhidden \\u202edesrever" in result.output
