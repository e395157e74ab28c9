"""Allow and deny lists against misuse and bad input: re-adding an entry is not a way to remove it,
expiries stay within range, files and ids that cannot be used get a clean error (QA findings 4, 7, 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app as cli_app
from mailmoat.config import Settings
from mailmoat.policy.site_lists import ListError, add, add_to_store
from mailmoat.store.db import Store
from mailmoat.store.list_models import SenderListRow
from tests.support.gateway import write_toml
from tests.support.webkit import web_env

runner = CliRunner()
HUGE = "99999999999999999999"  # beyond SQLite's 64-bit INTEGER


def cli(settings: Settings, *args: str, stdin: bytes | None = None) -> Any:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    Store(settings.db_url).close()  # the site's record, as `mailmoat serve` creates it
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir})
    return runner.invoke(cli_app, ["lists", *args, "--config", str(cfg)], input=stdin)


def clean_exit(result: Any) -> bool:
    """The command ended with a message and an exit code, not a traceback."""
    return result.exception is None or isinstance(result.exception, SystemExit)


def test_an_analyst_cannot_remove_or_take_over_an_entry_by_adding_it_again(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        c = env.client

        def post(role: str, body: dict[str, Any]) -> Any:
            r = c.post("/api/v1/lists/deny", json={"kind": "domain", **body}, headers=env.as_role(role))
            assert r.status_code == 201, r.text
            return r.json()

        def listed(value: str) -> dict[str, Any]:
            items = c.get("/api/v1/lists", headers=env.as_role("auditor")).json()["items"]
            return next(e for e in items if e["value"] == value)

        post("admin", {"value": "paypa1-secure.com", "note": "admin: fraud wave"})
        r = post("analyst", {"value": "paypa1-secure.com", "days": 0.00001})
        assert r["new"] is False and r["expires_at"] == 0
        e = listed("paypa1-secure.com")
        assert (e["expires_at"], e["created_by"], e["note"]) == (0, "admin", "admin: fraud wave")
        post("analyst", {"value": "paypa1-secure.com", "days": 7, "note": "seen again today"})
        e = listed("paypa1-secure.com")
        assert (e["expires_at"], e["created_by"]) == (0, "admin")
        assert e["note"] == "admin: fraud wave | analyst: seen again today"
        # The audit says what happened: the analyst's word, and the entry as it was and still is.
        last = env.audit("list.add", "deny:domain:paypa1-secure.com")[-1]
        assert last["actor"] == "analyst" and last["detail"]["days"] == 7 and last["detail"]["expires_at"] == 0
        assert last["detail"]["was"]["created_by"] == "admin" and last["detail"]["was"]["expires_at"] == 0

        # An analyst may lengthen an entry's life (no expiry is the longest), never shorten it.
        first = post("admin", {"value": "wave-two.example", "days": 1})
        longer = post("analyst", {"value": "wave-two.example", "days": 30})
        assert longer["expires_at"] > first["expires_at"] + 28 * 86400 and longer["created_by"] == "admin"
        assert post("analyst", {"value": "wave-two.example", "days": 2})["expires_at"] == longer["expires_at"]
        assert post("analyst", {"value": "wave-two.example", "days": 0})["expires_at"] == 0
        assert post("analyst", {"value": "wave-two.example", "days": 1})["expires_at"] == 0

        # An administrator's word replaces the entry's expiry, note and author.
        again = post("admin", {"value": "paypa1-secure.com", "days": 1, "note": "until the bank confirms"})
        assert 0 < again["expires_at"] < time.time() + 86400 + 60
        assert (again["created_by"], again["note"]) == ("admin", "until the bank confirms")

        # An entry that has expired is no longer in force: adding it again is a new addition.
        with env.store.session() as s:
            add(s, "deny", "domain", "old-wave.example", days=1, now=time.time() - 3 * 86400, by="admin", note="old")
            s.commit()
        back = post("analyst", {"value": "old-wave.example", "days": 3, "note": "back again"})
        assert (back["created_by"], back["note"]) == ("analyst", "back again") and back["expires_at"] > time.time()


def test_the_command_line_may_change_an_entry_as_an_administrator_does(settings: Settings) -> None:
    store = Store(settings.db_url)
    try:
        add_to_store(store, "deny", "domain", "evil.example", note="an analyst's", by="analyst")
    finally:
        store.close()
    r = cli(settings, "deny", "domain", "evil.example", "--days", "1", "--note", "the operator's")
    assert r.exit_code == 0 and "updated" in r.output, r.output
    items = json.loads(cli(settings, "list", "--format", "json").output)["items"]
    assert [(e["note"], e["expires_at"] > 0) for e in items] == [("the operator's", True)]


@pytest.mark.parametrize("days", [float("inf"), float("nan"), 1e400, 3651.0, -1.0])
def test_an_expiry_out_of_range_is_refused_where_entries_are_added(settings: Settings, days: float) -> None:
    store = Store(settings.db_url)
    try:
        with pytest.raises(ListError, match="days"):
            add_to_store(store, "deny", "domain", "ok.example", days=days, by="admin", may_remove=True)
    finally:
        store.close()


@pytest.mark.parametrize("days", ["inf", "1e400", "nan", "3651"])
def test_the_cli_refuses_an_expiry_out_of_range(settings: Settings, days: str) -> None:
    r = cli(settings, "deny", "domain", "ok.example", "--days", days)
    assert r.exit_code == 2 and clean_exit(r), r.output
    assert "days" in r.output
    r = cli(settings, "list")
    assert r.exit_code == 0 and "no entries" in r.output, r.output


def test_listing_survives_an_expiry_that_is_not_a_time(settings: Settings) -> None:
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            s.add(SenderListRow(list="deny", kind="domain", value="ok.example", note="", created_by="old",
                                created_at=time.time(), expires_at=float("inf")))
            s.commit()
    finally:
        store.close()
    r = cli(settings, "list")
    assert r.exit_code == 0 and clean_exit(r), r.output
    assert "ok.example" in r.output and "inf" in r.output
    r = cli(settings, "list", "--format", "json")
    assert r.exit_code == 0 and clean_exit(r), r.output
    assert json.loads(r.output)["items"][0]["value"] == "ok.example"


def test_an_import_that_is_not_utf8_names_the_file_and_line(settings: Settings, tmp_path: Path) -> None:
    exported = tmp_path / "blocked.txt"
    exported.write_bytes(b"evil.example\nphish\xe9.example\n")
    r = cli(settings, "import", "deny", str(exported))
    assert r.exit_code != 0 and clean_exit(r), r.output
    assert str(exported) in r.output and "line 2" in r.output and "UTF-8" in r.output
    assert "no entries" in cli(settings, "list").output  # none of it
    r = cli(settings, "import", "deny", "-", stdin=b"\xef\xbb\xbfevil.example\n")  # a byte order mark is fine
    assert r.exit_code == 0 and "1 added" in r.output, r.output


def test_ids_beyond_the_database_range_are_refused_cleanly(settings: Settings, tmp_path: Path) -> None:
    for cmd in ("remove", "safe-remove"):
        r = cli(settings, cmd, HUGE)
        assert r.exit_code == 2 and clean_exit(r), r.output
    with web_env(tmp_path / "web") as env:
        h = env.as_role("admin")
        assert env.client.delete(f"/api/v1/lists/{HUGE}", headers=h).status_code == 422
        assert env.client.delete(f"/api/v1/lists/safe/{HUGE}", headers=h).status_code == 422
        assert env.client.delete("/api/v1/lists/12345", headers=h).status_code == 404
