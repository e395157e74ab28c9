"""One condemned copy recalls its campaign: the other recipients' own copies, sent one by one, are judged again after the recall and recalled too."""

from __future__ import annotations

import asyncio
import json
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mailmoat.cli import app as cli_app
from mailmoat.config import Settings
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from mailmoat.store.recall_models import RecallJobRow
from tests.support.gateway import inprocess_gateway, wait_for, write_toml
from tests.support.pg import pg_url  # noqa: F401  (fixture)

ORG = "victim-corp.com"
STAFF = [f"{n}@{ORG}" for n in ("alice", "bob", "carol", "dave")]
runner = CliRunner()


def campaign_copy(rcpt: str, n: int) -> bytes:
    """A campaign that gets past the engines, sent as its sender sends it: one message per person,
    each with its own greeting and link."""
    m = EmailMessage()
    m["From"] = "Events <events@offsite-signup.example>"
    m["To"] = rcpt
    m["Subject"] = "Team offsite: choose your session"
    m["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
    m["Message-ID"] = f"<offsite-{n}@offsite-signup.example>"
    name = rcpt.split("@")[0].title()
    m.set_content(
        f"Hi {name},\n\nthe sessions for the team offsite are open. Please choose yours this week so that we can "
        f"plan the rooms and the lunch:\n\nhttps://offsite-signup.example/choose?u={n}x{n * 7}\n\nSee you there,\nEvents\n"
    )
    return m.as_bytes()


def unrelated(rcpt: str) -> bytes:
    m = EmailMessage()
    m["From"] = "Facilities <facilities@partner.example>"
    m["To"] = rcpt
    m["Subject"] = "Lift maintenance on Saturday"
    m["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    m["Message-ID"] = "<lift-1@partner.example>"
    m.set_content("The lifts in building B are out of service on Saturday morning.\n")
    return m.as_bytes()


def in_inbox(settings: Settings, rcpt: str) -> int:
    root = settings.mail_dir / rcpt
    return sum(1 for sub in ("new", "cur") if (root / sub).is_dir() for _ in (root / sub).iterdir())


def deliver_the_campaign(settings: Settings) -> dict[str, str]:
    """Three copies of the campaign and one unrelated message, delivered; message id by recipient."""
    settings.server.domains = [ORG]
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            for n, rcpt in enumerate(STAFF[:3], 1):
                c.sendmail("events@offsite-signup.example", [rcpt], campaign_copy(rcpt, n))
            c.sendmail("facilities@partner.example", [STAFF[3]], unrelated(STAFF[3]))
        wait_for(lambda: all(in_inbox(settings, r) == 1 for r in STAFF), what="every message delivered")
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            rows = list(s.scalars(select(MessageRow)))
            assert {r.action for r in rows} <= {"deliver", "tag"}  # all got past the engines
            return {r.rcpt_tos[0]: r.id for r in rows}
    finally:
        store.close()


def actions_and_triggers(settings: Settings) -> tuple[dict[str, str], list[str]]:
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            return ({r.rcpt_tos[0]: r.action for r in s.scalars(select(MessageRow))},
                    sorted(j.trigger for j in s.scalars(select(RecallJobRow))))
    finally:
        store.close()


def verdict_job(settings: Settings) -> str:
    """The recall job that condemning a message started."""
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            return str(s.scalars(select(RecallJobRow.id).where(RecallJobRow.trigger == "auto:verdict")).one())
    finally:
        store.close()


def job_states(settings: Settings) -> list[str]:
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            return sorted(j.state for j in s.scalars(select(RecallJobRow)))
    finally:
        store.close()


def test_condemning_one_copy_recalls_the_others(settings: Settings) -> None:
    ids = deliver_the_campaign(settings)
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir, "server": {"domains": [ORG]}})
    result = runner.invoke(cli_app, ["recall", "condemn", ids[STAFF[0]], "--reason", "reported", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    # Alice's copy by the person's verdict; Bob's and Carol's as the rest of its campaign.
    assert [in_inbox(settings, r) for r in STAFF] == [0, 0, 0, 1]
    actions, triggers = actions_and_triggers(settings)
    assert triggers == ["auto:siblings", "auto:siblings", "auto:verdict"]
    assert actions[STAFF[1]] == actions[STAFF[2]] == "quarantine" and actions[STAFF[3]] in ("deliver", "tag")
    # The person's job names the follow-up's jobs.
    job = verdict_job(settings)
    result = runner.invoke(cli_app, ["recall", "status", job, "--format", "json", "--config", str(cfg)])
    assert [f["state"] for f in json.loads(result.output)["follow_ups"]] == ["done", "done"]
    result = runner.invoke(cli_app, ["recall", "status", job, "--config", str(cfg)])
    assert "the rest of its campaign, recalled by its follow-up: jobs" in result.output
    # `mailmoat trace` says what became of each copy, and which job did it.
    result = runner.invoke(cli_app, ["trace", "--format", "json", "--config", str(cfg)])
    recalls = {d["recipient"]: d["recall"] for m in json.loads(result.output) for d in m["deliveries"]}
    assert [recalls[r] and recalls[r]["state"] for r in STAFF] == ["recalled", "recalled", "recalled", None]
    result = runner.invoke(cli_app, ["trace", "--subject", "offsite", "--config", str(cfg)])
    assert result.output.count("delivered, recalled by recall") == 3, result.output


def test_on_postgresql_the_rest_of_the_campaign_goes_to_the_task_workers(settings: Settings, request: pytest.FixtureRequest,
                                                                        tmp_path: Path) -> None:
    from mailmoat.recall.engine import RecallEngine
    from mailmoat.recall.selection import Selector
    from tests.support.scale import Worker, node_config

    settings.db = request.getfixturevalue("pg_url")
    ids = deliver_the_campaign(settings)
    store = Store(settings.db_url)
    engine = RecallEngine(settings, store)
    try:
        job_id = engine.plan([Selector(mail_id=ids[STAFF[0]], since="0")], "analyst", "reported", trigger="manual")
        asyncio.run(engine.run(job_id, "analyst"))  # this job here; what it leads to, on the task workers
    finally:
        asyncio.run(engine.close())
        store.close()
    assert [in_inbox(settings, r) for r in STAFF] == [0, 1, 1, 1]
    actions, triggers = actions_and_triggers(settings)
    assert triggers == ["auto:siblings", "auto:siblings", "manual"]
    assert actions[STAFF[1]] == actions[STAFF[2]] == "quarantine" and actions[STAFF[3]] in ("deliver", "tag")
    # A `mailmoat worker` on the same database and Maildir store runs the queued jobs.
    config = node_config(tmp_path / "worker.toml")
    worker = Worker(tmp_path, "w1", settings.db_url, settings.mail_dir, config)
    try:
        wait_for(lambda: [in_inbox(settings, r) for r in STAFF] == [0, 0, 0, 1], timeout=120, what="the follow-up's recalls")
    finally:
        assert worker.stop() == 0, (tmp_path / "w1.log").read_text()
    assert job_states(settings) == ["done"] * 3


def test_without_follow_up_only_the_condemned_copy_goes(settings: Settings) -> None:
    ids = deliver_the_campaign(settings)
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml",
                     {"data_dir": settings.data_dir, "server": {"domains": [ORG]}, "recall": {"follow_up_hours": 0}})
    result = runner.invoke(cli_app, ["recall", "condemn", ids[STAFF[0]], "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert [in_inbox(settings, r) for r in STAFF] == [0, 1, 1, 1]


def restore_the_condemned_copy(settings: Settings, ids: dict[str, str], cfg: Path) -> None:
    result = runner.invoke(cli_app, ["recall", "condemn", ids[STAFF[0]], "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert [in_inbox(settings, r) for r in STAFF] == [0, 0, 0, 1]
    result = runner.invoke(cli_app, ["recall", "restore", verdict_job(settings), "--config", str(cfg)])
    assert result.exit_code == 0 and "restored too, the rest of its campaign" in result.output, result.output


def test_restoring_the_persons_recall_puts_the_rest_of_the_campaign_back(settings: Settings) -> None:
    """The analyst condemned the wrong message: restoring that recall restores what its follow-up
    recalled because of it, and the other copies' verdicts are judged again without it."""
    ids = deliver_the_campaign(settings)
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir, "server": {"domains": [ORG]}})
    before, _ = actions_and_triggers(settings)
    restore_the_condemned_copy(settings, ids, cfg)
    assert [in_inbox(settings, r) for r in STAFF] == [1, 1, 1, 1]
    actions, _ = actions_and_triggers(settings)
    assert actions == before
    assert job_states(settings) == ["restored"] * 3
    store = Store(settings.db_url)
    try:  # their findings are those of the new judgement, without the recall's
        with store.session() as s:
            assert not any("NEAR_COPY_CONDEMNED" in (m.symbols or {}) for m in s.scalars(select(MessageRow)))
    finally:
        store.close()


def test_a_copy_condemned_on_its_own_is_recalled_again(settings: Settings) -> None:
    """Meanwhile threat intelligence listed Carol's link: judged again, her copy goes back out of
    her mailbox, by the gateway's own verdict."""
    ids = deliver_the_campaign(settings)
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir, "server": {"domains": [ORG]}})
    (Path(settings.data_dir) / "intel").mkdir(parents=True, exist_ok=True)
    (Path(settings.data_dir) / "intel" / "url.txt").write_text("https://offsite-signup.example/choose?u=3x21\n", encoding="utf-8")
    restore_the_condemned_copy(settings, ids, cfg)
    assert [in_inbox(settings, r) for r in STAFF] == [1, 1, 0, 1]
    actions, triggers = actions_and_triggers(settings)
    assert triggers == ["auto:rescan", "auto:siblings", "auto:siblings", "auto:verdict"]
    assert actions[STAFF[1]] in ("deliver", "tag") and actions[STAFF[2]] == "quarantine"


def test_restoring_one_copy_leaves_the_follow_up_alone(settings: Settings) -> None:
    ids = deliver_the_campaign(settings)
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir, "server": {"domains": [ORG]}})
    assert runner.invoke(cli_app, ["recall", "condemn", ids[STAFF[0]], "--config", str(cfg)]).exit_code == 0
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            job = s.scalars(select(RecallJobRow).where(RecallJobRow.trigger == "auto:verdict")).one()
            copy = job.copies[0].tracking_id
    finally:
        store.close()
    result = runner.invoke(cli_app, ["recall", "restore", job.id, "--copy", copy, "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert [in_inbox(settings, r) for r in STAFF] == [1, 0, 0, 1]


def test_the_console_gets_the_copies_back_at_once_and_follows_the_judging_again(settings: Settings) -> None:
    """Over the API, a whole restore answers when the copies are back, the follow-up's included;
    judging its messages again (a minute for a thousand) runs in the background while the job
    says `running`."""
    import time

    from fastapi.testclient import TestClient

    from mailmoat.store.web_models import UserRow
    from mailmoat.web import create_app
    from mailmoat.web.auth import create_token

    ids = deliver_the_campaign(settings)
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir, "server": {"domains": [ORG]}})
    before, _ = actions_and_triggers(settings)
    assert runner.invoke(cli_app, ["recall", "condemn", ids[STAFF[0]], "--config", str(cfg)]).exit_code == 0
    settings.server.domains = [ORG]
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        with store.session() as s:
            user = UserRow(username="analyst", password_hash="-", role="analyst", created_at=time.time())
            s.add(user)
            s.flush()
            auth = {"Authorization": f"Bearer {create_token(s, user, 'test')[1]}"}
            s.commit()
        job = verdict_job(settings)
        with TestClient(create_app(settings, store)) as c:
            r = c.post(f"/api/v1/recall/jobs/{job}/restore", json={}, headers=auth)
            st = r.json()
            assert r.status_code == 200, r.text
            assert st["state"] == "restored" and len(st["follow_up_restored"]) == 2
            assert [in_inbox(settings, r) for r in STAFF] == [1, 1, 1, 1]
            assert st["running"] is True
            wait_for(lambda: not c.get(f"/api/v1/recall/jobs/{job}", headers=auth).json()["running"], what="judged again")
        actions, _ = actions_and_triggers(settings)
        assert actions == before
        with store.session() as s:
            assert not any("NEAR_COPY_CONDEMNED" in (m.symbols or {}) for m in s.scalars(select(MessageRow)))
    finally:
        store.close()
