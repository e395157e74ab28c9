"""Bad input to the JSON API and the CLI (QA's report): wildcards in selectors, non-finite times, numbers
too large for the database, unreadable files, unmanageable user names, mistyped data paths.
Each is refused with a clear answer (422, or a one-line error and a non-zero exit) instead of a
traceback, an HTTP 500 or a silently wrong result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.model import Action, Envelope, Verdict
from mailmoat.parse import parse
from tests.support.webkit import WebEnv, web_env

API = "/api/v1"
HUGE = "99999999999999999999"  # more than SQLite's 64-bit INTEGER holds
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[WebEnv]:
    with web_env(tmp_path) as e:
        yield e


def record(env: WebEnv, subject: str) -> str:
    raw = f"From: Shop <deals@shop.example>\r\nTo: li.na@victim-corp.com\r\nSubject: {subject}\r\n\r\nHello.\r\n".encode()
    envelope = Envelope(mail_from="deals@shop.example", rcpt_tos=["li.na@victim-corp.com"], size=len(raw))
    env.store.record_message(envelope, parse(raw), Verdict(Action.DELIVER, 0.0))
    return envelope.id


def cli(env: WebEnv, *args: str) -> tuple[int, str]:
    r = runner.invoke(app, [*args, "--data-dir", env.settings.data_dir])
    return r.exit_code, r.output


# -- 1. LIKE wildcards match literally -------------------------------------------------------


def test_wildcards_in_subject_url_and_qr_selectors_match_literally(env: WebEnv) -> None:
    h = env.as_role("analyst")
    c = env.client

    def total(**params: str) -> int:
        r = c.get(f"{API}/messages", params=params, headers=h)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    for wild in ("%", "_", "\\"):
        assert total(subject=wild) == 0
        assert total(url=wild) == 0
        assert total(qr=wild) == 0
        preview = c.post(f"{API}/recall/preview", json={"selector": {"subject": wild}}, headers=h)
        assert preview.status_code == 200 and preview.json()["copies"] == 0, preview.text
    assert total(subject="WEEKLY") == 1  # still a case-insensitive substring
    assert total(url="LETTERS.example/re") == 1

    sale = record(env, "50% off until Friday")
    record(env, "500 off until Friday")  # '50% off' as a pattern would take this one too
    record(env, "Invoice-2026")
    invoice = record(env, "Invoice_2026")
    assert [m["id"] for m in c.get(f"{API}/messages", params={"subject": "50% OFF"}, headers=h).json()["items"]] == [sale]
    assert [m["id"] for m in c.get(f"{API}/messages", params={"subject": "invoice_2026"}, headers=h).json()["items"]] == [invoice]

    code, out = cli(env, "recall", "plan", "--dry-run", "--format", "json", "--subject", "%")
    assert code == 0 and '"copies": 0' in out, out
    code, out = cli(env, "recall", "plan", "--dry-run", "--format", "json", "--subject", "weekly")
    assert code == 0 and '"copies": 1' in out, out


# -- 2. non-finite times ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "Infinity", "1" + "0" * 400 + "d"])
def test_non_finite_times_are_refused(env: WebEnv, value: str) -> None:
    h = env.as_role("admin")
    for path in ("/messages", "/audit"):
        r = env.client.get(f"{API}{path}", params={"since": value}, headers=h)
        assert r.status_code == 422 and "cannot read time" in r.text, (path, r.text)
    r = env.client.post(f"{API}/recall/preview", json={"selector": {"subject": "Weekly", "until": value}}, headers=h)
    assert r.status_code == 422, r.text
    code, out = cli(env, "trace", "--since", value)
    assert code == 2 and "cannot read time" in out, out


# -- 3. numbers too large for the database ---------------------------------------------------


def test_too_large_numbers_are_422_not_500(env: WebEnv) -> None:
    h = env.as_role("admin")
    c = env.client
    for path in ("/messages", "/audit", "/quarantine"):
        assert c.get(f"{API}{path}", params={"offset": HUGE}, headers=h).status_code == 422, path
    for limit in (HUGE, "-1", "0"):
        assert c.get(f"{API}/incidents", params={"limit": limit}, headers=h).status_code == 422, limit
    assert c.get(f"{API}/incidents", params={"limit": "10"}, headers=h).status_code == 200
    for method, path in (
        ("DELETE", f"/lists/{HUGE}"), ("DELETE", f"/lists/safe/{HUGE}"), ("DELETE", f"/tokens/{HUGE}"),
        ("POST", f"/quarantine/requests/{HUGE}/decline"),
    ):
        r = c.request(method, f"{API}{path}", headers=h)
        assert r.status_code == 422, (path, r.status_code, r.text)
    # The largest id SQLite holds is an id like any other: not found.
    assert c.delete(f"{API}/tokens/{2**63 - 1}", headers=h).status_code == 404


def test_a_stray_overflow_is_422(env: WebEnv) -> None:
    """A safety net under the bounds on parameters: an OverflowError anywhere in a handler is the
    client's number being out of range, not a server error."""

    def overflow() -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    env.client.app.add_api_route(f"{API}/test-overflow", overflow)  # type: ignore[attr-defined]
    r = env.client.get(f"{API}/test-overflow")
    assert r.status_code == 422 and "out of range" in r.json()["detail"], r.text


@pytest.mark.parametrize("args", [
    ["trace", "--limit", HUGE], ["trace", "--limit", "0"], ["trace", "--limit", "-1"],
    ["audit", "--limit", HUGE], ["quarantine", "list", "--limit", HUGE], ["quarantine", "decline", HUGE],
    ["incidents", "list", "--limit", HUGE], ["incidents", "list", "--limit", "0"], ["waves", "--limit", HUGE],
])
def test_cli_refuses_out_of_range_numbers(env: WebEnv, args: list[str]) -> None:
    code, out = cli(env, *args)
    assert code == 2 and "Traceback" not in out and "Invalid value" in out, out


# -- 4. unreadable config files and passwords --------------------------------------------------


def test_unreadable_config_is_a_one_line_error(tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00\x01data_dir = 1\n")
    for path, says in ((tmp_path, "is a directory"), (binary, "not UTF-8")):
        r = runner.invoke(app, ["status", "-c", str(path)])
        assert r.exit_code == 2 and r.exception is not None and isinstance(r.exception, SystemExit), r.output
        assert says in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_password_from_stdin_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["users", "add", "qa4", "--password-stdin", "--data-dir", str(tmp_path / "var")], input=b"\xff\xfe long enough pw\n"
    )
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert "UTF-8" in r.output, r.output


# -- 5. user names ---------------------------------------------------------------------------


def test_user_names_are_letters_digits_and_a_few_signs(env: WebEnv) -> None:
    h = env.as_role("admin")
    c = env.client
    for bad in ("../../etc", "a/b", "a?b", "a#b", "a%2fb", "tab\tname", "nul\x00", "bell\x07", "..", ".hidden", "x" * 321, "x" * 100_000, ""):
        r = c.post(f"{API}/users", json={"username": bad, "password": "long enough pw", "role": "auditor"}, headers=h)
        assert r.status_code == 422, (bad[:20], r.text)
        assert "letters" in r.json()["detail"] and "320" in r.json()["detail"], r.text
    r = c.post(f"{API}/users", json={"username": "Li.Na+Ops_2@victim-corp.com", "password": "long enough pw", "role": "auditor"}, headers=h)
    assert r.status_code == 201 and r.json()["username"] == "li.na+ops_2@victim-corp.com", r.text
    assert c.patch(f"{API}/users/li.na+ops_2@victim-corp.com", json={"disabled": True}, headers=h).status_code == 200

    code, out = cli(env, "users", "add", "../../etc", "--password-stdin")
    assert code == 2 and "letters" in out, out


# -- 6. read-only commands on a mistyped data path ---------------------------------------------


@pytest.mark.parametrize("command", [
    ["status"], ["trace"], ["audit"], ["quarantine", "list"], ["quarantine", "show", "x"], ["quarantine", "requests"],
    ["reports", "list"], ["incidents", "list"], ["incidents", "show", "x"], ["waves"], ["digest", "preview", "li.na@localhost"],
    ["users", "list"], ["users", "passwd", "x", "--password-stdin"], ["users", "token", "x"],
    ["recall", "list"], ["recall", "status", "x"], ["recall", "restore", "x"], ["recall", "condemn", "x"],
    ["recall", "uncondemn", "x"], ["recall", "plan", "--subject", "x"], ["rescan"], ["lists", "list"], ["lists", "safe"],
])
def test_read_only_commands_do_not_create_a_store(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no" / "such"
    for where in (["--data-dir", str(missing)], ["--db", f"sqlite:///{missing}/x.db"]):
        r = runner.invoke(app, [*command, *where])
        assert r.exit_code == 2, (where, r.output)
        assert f"no mailmoat data at {missing}" in r.output, r.output
        assert not (tmp_path / "no").exists()


def test_read_only_commands_still_read_an_existing_store(env: WebEnv) -> None:
    code, out = cli(env, "trace", "--subject", "Weekly")
    assert code == 0 and "Weekly notes" in out, out
    code, out = cli(env, "quarantine", "list")
    assert code == 0 and "1 of 1 held" in out, out


# -- 7. digest preview of a non-address, scan of an empty directory ---------------------------


def test_digest_preview_of_a_non_address_fails(env: WebEnv) -> None:
    code, out = cli(env, "digest", "preview", "not an address")
    assert code == 2 and "not an e-mail address" in out, out


def test_scan_of_an_empty_directory_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["scan", str(empty), "--data-dir", str(tmp_path / "var")])
    assert r.exit_code == 1 and f"no messages found under {empty}" in r.output, r.output


# -- 8. token lifetimes and look-back windows out of range ------------------------------------


@pytest.mark.parametrize("days", ["1e308", "inf", "nan", "-1", "3651"])
def test_a_token_lifetime_out_of_range_is_refused(env: WebEnv, days: str) -> None:
    """1e308 days stored an expiry no listing could show: a token that never expires by mistake."""
    if days not in ("inf", "nan"):  # JSON has no such numbers
        r = env.client.post(f"{API}/tokens", content=f'{{"name": "siem", "expires_days": {days}}}',
                            headers={**env.as_role("admin"), "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
    code, out = cli(env, "users", "token", "admin", "--expires-days", days)
    assert code != 0 and "Traceback" not in out and ("3650" in out or "Invalid value" in out), out


def test_waves_refuses_an_endless_look_back(env: WebEnv) -> None:
    code, out = cli(env, "waves", "--hours", "inf")
    assert code == 2 and "Traceback" not in out, out


@pytest.mark.parametrize("command", [
    ["lists", "deny", "domain", "evil.example"], ["lists", "remove", "1"], ["quarantine", "release", "x"],
    ["quarantine", "delete", "x"], ["reports", "dismiss", "x"], ["incidents", "release", "x"], ["digest", "send"],
])
def test_commands_that_change_the_record_do_not_create_one(tmp_path: Path, command: list[str]) -> None:
    """`lists deny` at a mistyped --data-dir said "added #1" to a new, empty store nothing reads."""
    missing = tmp_path / "no" / "such"
    r = runner.invoke(app, [*command, "--data-dir", str(missing)])
    assert r.exit_code == 2 and f"no mailmoat data at {missing}" in r.output, r.output
    assert not (tmp_path / "no").exists()
