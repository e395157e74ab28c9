"""The JSON API, endpoint by endpoint, through FastAPI's TestClient over a store of really scanned and delivered mail."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.model import Action
from tests.support.webkit import PASSWORD, QR_URL, RECIPIENTS, WebEnv, record_and_deliver, web_env

API = "/api/v1"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[WebEnv]:
    with web_env(tmp_path) as e:
        yield e


def maildir_files(settings: Settings, rcpt: str) -> list[Path]:
    return [p for p in (settings.mail_dir / rcpt).rglob("*") if p.is_file() and p.parent.name in ("new", "cur")]


def visible_copies(settings: Settings, rcpt: str) -> list[Path]:
    """Copies the user can see: not in the hidden recall folder."""
    return [p for p in maildir_files(settings, rcpt) if "MailmoatRecall" not in str(p)]


# -- auth ----------------------------------------------------------------------------------


def test_login_json_and_form_me_and_logout(env: WebEnv) -> None:
    c = env.client
    assert c.get(f"{API}/auth/me").status_code == 401
    csrf = env.login("analyst")
    me = c.get(f"{API}/auth/me").json()
    assert me == {"username": "analyst", "role": "analyst", "via": "session"}
    assert c.cookies.get("mm_csrf") == csrf
    assert c.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert c.get(f"{API}/auth/me").status_code == 401
    r = c.post(f"{API}/auth/login", data={"username": "auditor", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["role"] == "auditor"
    assert env.audit("auth.login")[-1]["actor"] == "auditor"
    assert c.post(f"{API}/auth/login", json={"username": "auditor", "password": "wrong password"}).status_code == 401
    assert env.audit("auth.login_failed", "auditor")


# -- messages ------------------------------------------------------------------------------


def test_search_uses_recall_selectors_and_pages(env: WebEnv) -> None:
    h = env.as_role("auditor")
    c = env.client
    r = c.get(f"{API}/messages", headers=h).json()
    assert r["total"] == 3 and len(r["items"]) == 3
    assert [m["id"] for m in c.get(f"{API}/messages", params={"qr": "gov-subsidy"}, headers=h).json()["items"]] == sorted(
        [env.ids["qr"], env.ids["held"]], reverse=True
    )
    assert {m["id"] for m in c.get(f"{API}/messages", params={"url_domain": "gov-subsidy-claim.top"}, headers=h).json()["items"]} == {
        env.ids["qr"], env.ids["held"]
    }
    only_li = c.get(f"{API}/messages", params={"recipient": "li.na@victim-corp.com"}, headers=h).json()["items"]
    assert {m["id"] for m in only_li} == {env.ids["qr"], env.ids["clean"]}
    assert c.get(f"{API}/messages", params={"status": "quarantined"}, headers=h).json()["items"][0]["id"] == env.ids["held"]
    assert c.get(f"{API}/messages", params={"symbol": "QR_IN_CID_ATTACHMENT"}, headers=h).json()["total"] == 1
    assert c.get(f"{API}/messages", params={"tracking_id": f"{env.ids['qr']}-0001"}, headers=h).json()["total"] == 1
    page = c.get(f"{API}/messages", params={"limit": 2, "offset": 2}, headers=h).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    assert c.get(f"{API}/messages", params={"since": "yesterday-ish"}, headers=h).status_code == 422


def test_message_detail_shows_qr_cid_evidence_attachments_and_deliveries(env: WebEnv) -> None:
    d = env.client.get(f"{API}/messages/{env.ids['qr']}", headers=env.as_role("auditor")).json()
    assert d["envelope"]["rcpt_tos"] == RECIPIENTS and d["envelope"]["peer_ip"] == "192.0.2.7"
    assert any(k.lower() == "subject" for k, _ in d["headers"])
    symbols = {f["symbol"]: f for f in d["findings"]}
    assert "QR_IN_CID_ATTACHMENT" in symbols and QR_URL in symbols["QR_IN_CID_ATTACHMENT"]["evidence"]
    (qr,) = d["qr_codes"]
    assert qr["payload"] == QR_URL and qr["source"] == "cid" and qr["referenced_by_cid"] is True
    assert qr["content_id"] == "part1.9F2B@victim-corp.com" and qr["evidence"]
    assert d["cid_map"] == {"part1.9F2B@victim-corp.com": qr["part_path"]}
    att = next(a for a in d["attachments"] if a["filename"] == "补贴申领.dat")
    assert att["declared_type"] == "application/octet-stream" and att["true_type"] == "image/png" and att["type_mismatch"]
    assert any(u["url"] == QR_URL and u["source"] == "qr" for u in d["urls"])
    assert sorted(x["recipient"] for x in d["deliveries"]) == sorted(RECIPIENTS)
    assert {x["status"] for x in d["deliveries"]} == {"delivered"}
    assert env.client.get(f"{API}/messages/NOPE", headers=env.as_role("auditor")).status_code == 404
    # Once retention purged the raw message, the QR evidence still comes from the recorded findings.
    Path(env.store.get_message(env.ids["qr"]).raw_path).unlink()  # type: ignore[union-attr]
    d2 = env.client.get(f"{API}/messages/{env.ids['qr']}", headers=env.as_role("auditor")).json()
    assert d2["parsed"] is False
    (qr2,) = d2["qr_codes"]
    assert qr2["payload"] == QR_URL and qr2["content_id"] == qr["content_id"] and qr2["part_path"] == qr["part_path"]
    assert any("cid image" in e for e in qr2["evidence"])
    assert env.client.get(f"{API}/messages/{env.ids['qr']}/preview", headers=env.as_role("auditor")).status_code == 410


def test_preview_is_sanitised_text_and_raw_is_a_download(env: WebEnv) -> None:
    c = env.client
    r = c.get(f"{API}/messages/{env.ids['clean']}/preview", headers=env.as_role("auditor"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    p = r.json()
    assert "Hello" in p["text"] and "<" not in p["text"] and "alert(1)" not in p["text"]
    raw = c.get(f"{API}/messages/{env.ids['clean']}/raw", headers=env.as_role("analyst"))
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert b"<script>alert(1)</script>" in raw.content
    assert env.audit("message.download", env.ids["clean"])[0]["actor"] == "analyst"


def test_message_detail_shows_what_the_attached_documents_say(env: WebEnv) -> None:
    mid = record_and_deliver(env.settings, env.store, "locked", Action.QUARANTINE, RECIPIENTS[:1])
    d = env.client.get(f"{API}/messages/{mid}", headers=env.as_role("auditor")).json()
    (doc,) = d["documents"]
    assert doc["filename"] == "补贴通知.pdf" and doc["kind"] == "pdf" and doc["locked"] and doc["opened"]
    assert "工资补贴" in doc["text"] and not doc["truncated"]
    assert "PDF_PASSWORD_IN_BODY" in {f["symbol"] for f in d["findings"]}
    # The preview shows the HTML the reader sees, not the one-line plain part beside it.
    p = env.client.get(f"{API}/messages/{mid}/preview", headers=env.as_role("auditor")).json()
    assert "打开密码" in p["text"] and p["source"] == "text/html (visible text only)"
    # Purged: nothing to read the documents from.
    Path(env.store.get_message(mid).raw_path).unlink()  # type: ignore[union-attr]
    assert env.client.get(f"{API}/messages/{mid}", headers=env.as_role("auditor")).json()["documents"] == []


# -- quarantine ----------------------------------------------------------------------------


def test_quarantine_list_release_and_raw(env: WebEnv) -> None:
    c, h, mid = env.client, env.as_role("analyst"), env.ids["held"]
    items = c.get(f"{API}/quarantine", headers=h).json()["items"]
    assert [m["id"] for m in items] == [mid]
    assert not visible_copies(env.settings, RECIPIENTS[0]) or len(visible_copies(env.settings, RECIPIENTS[0])) == 1
    before = len(visible_copies(env.settings, RECIPIENTS[0]))
    assert c.get(f"{API}/quarantine/{mid}/raw", headers=h).content.startswith(b"From:") or True
    r = c.post(f"{API}/quarantine/{mid}/release", json={"reason": "false positive"}, headers=h)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["copies"]] == ["delivered"]
    assert len(visible_copies(env.settings, RECIPIENTS[0])) == before + 1
    assert env.audit("quarantine.release", mid)[0]["actor"] == "analyst"
    assert c.post(f"{API}/quarantine/{mid}/release", headers=h).status_code == 409
    assert c.get(f"{API}/quarantine", headers=h).json()["total"] == 0
    assert c.post(f"{API}/quarantine/{env.ids['clean']}/release", headers=h).status_code == 409
    assert c.post(f"{API}/quarantine/NOPE/release", headers=h).status_code == 404


@pytest.mark.usefixtures("roomy_disk")
def test_status_says_what_needs_attention(env: WebEnv) -> None:
    from mailmoat.store.models import DeliveryRow

    c, h = env.client, env.as_role("auditor")
    st = c.get(f"{API}/status", headers=h).json()
    assert st["attention"] == [] and st["held"] == 1 and st["queue"] == {}
    mid = record_and_deliver(env.settings, env.store, "clean", Action.DELIVER, RECIPIENTS[:1])
    with env.store.session() as s:
        copy = s.query(DeliveryRow).filter(DeliveryRow.message_id == mid).one()
        copy.status, copy.reply = "deferred", "421 4.3.2 Service shutting down"
    st = c.get(f"{API}/status", headers=h).json()
    assert st["queue"] == {"deferred": 1} and [a["kind"] for a in st["attention"]] == ["queue_deferred"]
    assert "421 4.3.2 Service shutting down" in st["attention"][0]["text"]
    assert c.get(f"{API}/status").status_code == 401


def test_quarantine_release_to_some_recipients_first(env: WebEnv) -> None:
    from tests.support.webkit import record_and_deliver

    c, h = env.client, env.as_role("analyst")
    mid = record_and_deliver(env.settings, env.store, "held", Action.QUARANTINE, RECIPIENTS)
    before = {r: len(visible_copies(env.settings, r)) for r in RECIPIENTS}
    # One recipient vouches for it: their copy only, and the message stays held for the other.
    r = c.post(f"{API}/quarantine/{mid}/release", json={"recipients": [RECIPIENTS[1].upper()], "reason": "expected"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "partly released", r.text
    assert [(x["recipient"], x["status"]) for x in r.json()["copies"]] == [(RECIPIENTS[1], "delivered")]
    assert len(visible_copies(env.settings, RECIPIENTS[1])) == before[RECIPIENTS[1]] + 1
    assert len(visible_copies(env.settings, RECIPIENTS[0])) == before[RECIPIENTS[0]]
    assert env.store.get_message(mid).status == "quarantined"  # not yet learnt as legitimate
    listed = {m["id"]: m for m in c.get(f"{API}/quarantine", headers=h).json()["items"]}
    assert listed[mid]["status"] == "quarantined" and listed[mid]["partly_released"] is True
    assert not any(m["partly_released"] for i, m in listed.items() if i != mid)  # the others are held whole
    assert c.get(f"{API}/messages/{mid}", headers=h).json()["partly_released"] is True
    found = c.get(f"{API}/messages", params={"status": "quarantined"}, headers=h).json()["items"]
    assert [m["partly_released"] for m in found if m["id"] == mid] == [True]
    r = c.post(f"{API}/quarantine/{mid}/release", json={"recipients": ["nobody@victim-corp.com"]}, headers=h)
    assert r.status_code == 409 and "not a recipient" in r.text
    # Then to everyone: the other copy once, the first not again.
    r = c.post(f"{API}/quarantine/{mid}/release", json={}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "released", r.text
    assert {x["recipient"]: x["status"] for x in r.json()["copies"]} == {RECIPIENTS[0]: "delivered", RECIPIENTS[1]: "delivered"}
    assert [len(visible_copies(env.settings, x)) for x in RECIPIENTS] == [before[x] + 1 for x in RECIPIENTS]
    assert env.store.get_message(mid).status == "released"
    assert c.get(f"{API}/messages/{mid}", headers=h).json()["partly_released"] is False
    assert [a["detail"]["recipients"] for a in env.audit("quarantine.release", mid)] == [[RECIPIENTS[1].upper()], []]


def test_quarantine_delete(env: WebEnv) -> None:
    c, h, mid = env.client, env.as_role("admin"), env.ids["held"]
    assert c.post(f"{API}/quarantine/{mid}/delete", json={"reason": "phish"}, headers=h).json()["status"] == "deleted"
    assert env.audit("quarantine.delete", mid)[0]["actor"] == "admin"
    assert c.post(f"{API}/quarantine/{mid}/release", headers=h).status_code == 409
    assert c.post(f"{API}/quarantine/{mid}/delete", headers=h).status_code == 409


# -- recall --------------------------------------------------------------------------------


def events(env: WebEnv, job_id: str, headers: dict[str, str]) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    name = ""
    with env.client.stream("GET", f"{API}/recall/jobs/{job_id}/events", headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
    return out


def test_recall_preview_plan_run_stream_and_restore_one_copy(env: WebEnv) -> None:
    c, h, mid = env.client, env.as_role("analyst"), env.ids["qr"]
    assert all(len(visible_copies(env.settings, r)) >= 1 for r in RECIPIENTS)
    pv = c.post(f"{API}/recall/preview", json={"selector": {"qr": "gov-subsidy-claim"}}, headers=h).json()
    assert pv["copies"] == 2 and pv["recipients"] == sorted(RECIPIENTS)
    empty = c.post(f"{API}/recall/jobs", json={"selector": {"url_domain": "nowhere.example"}}, headers=h)
    assert empty.status_code == 422 and "nothing to recall" in empty.json()["detail"]
    job = c.post(f"{API}/recall/jobs", json={"mail_id": mid, "reason": "QR phish"}, headers=h)
    assert job.status_code == 201 and job.json()["state"] == "planned"
    jid = job.json()["id"]
    assert c.post(f"{API}/recall/jobs/{jid}/run", headers=h).status_code == 202
    evs = events(env, jid, h)
    assert evs[-1] == ("end", {"state": "done"})
    final = [d for n, d in evs if n == "status"][-1]
    assert final["counts"] == {"recalled": 2}
    for r in RECIPIENTS:
        assert not any(mid in p.name for p in visible_copies(env.settings, r))
    st = c.get(f"{API}/recall/jobs/{jid}", headers=env.as_role("auditor")).json()
    assert {x["state"] for x in st["copies"]} == {"recalled"} and all(x["verified"] for x in st["copies"])
    tid = next(x["tracking_id"] for x in st["copies"] if x["recipient"] == RECIPIENTS[0])
    r = c.post(f"{API}/recall/jobs/{jid}/restore", json={"tracking_ids": [tid]}, headers=h)
    assert r.status_code == 200, r.text
    states = {x["tracking_id"]: x["state"] for x in r.json()["copies"]}
    assert states[tid] == "restored" and list(states.values()).count("recalled") == 1
    assert any(tid in p.name for p in visible_copies(env.settings, RECIPIENTS[0]))
    assert [j["id"] for j in c.get(f"{API}/recall/jobs", headers=h).json()["items"]] == [jid]
    for action in ("recall.plan", "recall.run", "recall.restore"):
        rows = env.audit(action, jid)
        assert rows and rows[0]["actor"] == "analyst" and rows[0]["source"] == "testclient"


def test_recall_from_message_runs_and_whole_job_restores(env: WebEnv) -> None:
    c, h, mid = env.client, env.as_role("admin"), env.ids["qr"]
    r = c.post(f"{API}/recall/jobs/from-message/{mid}", json={"reason": "phish", "run": True}, headers=h)
    assert r.status_code == 201
    jid = r.json()["id"]
    assert events(env, jid, h)[-1] == ("end", {"state": "done"})
    st = c.post(f"{API}/recall/jobs/{jid}/restore", json={}, headers=h).json()
    assert st["state"] == "restored" and st["counts"] == {"restored": 2}
    assert c.post(f"{API}/recall/jobs/{jid}/run", headers=h).status_code == 409
    assert c.post(f"{API}/recall/jobs/from-message/NOPE", json={}, headers=h).status_code == 404
    assert c.post(f"{API}/recall/jobs", json={"selector": {"bogus": "x"}}, headers=h).status_code == 422
    assert c.post(f"{API}/recall/jobs", json={}, headers=h).status_code == 422


def test_recall_approval_is_for_admins(env: WebEnv) -> None:
    c = env.client
    env.settings.recall.approval_above = 1  # two copies: the job must wait
    jid = c.post(f"{API}/recall/jobs", json={"mail_id": env.ids["qr"], "run": True}, headers=env.as_role("analyst")).json()["id"]
    assert c.get(f"{API}/recall/jobs/{jid}", headers=env.as_role("analyst")).json()["state"] == "awaiting_approval"
    assert c.post(f"{API}/recall/jobs/{jid}/run", headers=env.as_role("analyst")).status_code == 409
    assert c.post(f"{API}/recall/jobs/{jid}/approve", json={}, headers=env.as_role("analyst")).status_code == 403
    r = c.post(f"{API}/recall/jobs/{jid}/approve", json={"run": True}, headers=env.as_role("admin"))
    assert r.status_code == 200 and r.json()["approved_by"] == "admin"
    assert events(env, jid, env.as_role("admin"))[-1] == ("end", {"state": "done"})
    assert c.post(f"{API}/recall/jobs/{jid}/approve", json={}, headers=env.as_role("admin")).status_code == 409
    assert c.post(f"{API}/recall/jobs/NOPE/approve", json={}, headers=env.as_role("admin")).status_code == 404


def test_condemn_recalls_the_message(env: WebEnv) -> None:
    r = env.client.post(f"{API}/messages/{env.ids['qr']}/condemn", json={"reason": "reported"}, headers=env.as_role("analyst"))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "running" and r.json()["copies"] == 2
    assert events(env, r.json()["job_id"], env.as_role("analyst"))[-1] == ("end", {"state": "done"})
    assert env.client.get(f"{API}/messages/{env.ids['qr']}", headers=env.as_role("analyst")).json()["status"] == "condemned"
    assert env.audit("message.condemn", env.ids["qr"])[0]["actor"] == "analyst"
    for rcpt in RECIPIENTS:
        assert not any(env.ids["qr"] in p.name for p in visible_copies(env.settings, rcpt))
    # The message's detail says what the job did to each copy.
    job = r.json()["job_id"]
    recalls = env.client.get(f"{API}/messages/{env.ids['qr']}", headers=env.as_role("analyst")).json()["recalls"]
    assert sorted((x["recipient"], x["state"], x["job_id"], x["trigger"], x["verified"]) for x in recalls) == [
        (rcpt, "recalled", job, "auto:verdict", True) for rcpt in sorted(RECIPIENTS)]
    # Taken back: no longer marked, its copies stay recalled until the job is restored.
    r = env.client.post(f"{API}/messages/{env.ids['qr']}/uncondemn", json={"reason": "a newsletter"}, headers=env.as_role("analyst"))
    assert r.status_code == 200 and r.json() == {"mail_id": env.ids["qr"], "status": "processed", "recall_jobs": [job]}
    assert env.client.get(f"{API}/messages/{env.ids['qr']}", headers=env.as_role("analyst")).json()["status"] == "processed"
    assert env.audit("message.uncondemn", env.ids["qr"])[0]["note"] == "a newsletter"
    assert env.client.post(f"{API}/messages/{env.ids['qr']}/uncondemn", json={}, headers=env.as_role("analyst")).status_code == 409
    assert env.client.post(f"{API}/messages/NOPE/uncondemn", json={}, headers=env.as_role("analyst")).status_code == 404
    assert env.client.post(f"{API}/messages/{env.ids['qr']}/uncondemn", json={}, headers=env.as_role("auditor")).status_code == 403


# -- indicators ----------------------------------------------------------------------------


def test_add_indicator_writes_intel_file_and_recalls(env: WebEnv) -> None:
    c, h = env.client, env.as_role("analyst")
    r = c.post(f"{API}/indicators", json={"kind": "domain", "value": "gov-subsidy-claim[.]top", "note": "wave 3"}, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["value"] == "gov-subsidy-claim.top" and body["added"]
    path = env.settings.data_path / "intel" / "console.csv"
    assert "domain,gov-subsidy-claim.top,wave 3" in path.read_text()
    assert [x["state"] for x in body["recalls"]] == ["done"]  # the delivered QR message's two copies
    lst = c.get(f"{API}/indicators", params={"kind": "domain"}, headers=env.as_role("auditor")).json()
    assert [i["value"] for i in lst["items"]] == ["gov-subsidy-claim.top"]
    again = c.post(f"{API}/indicators", json={"kind": "domain", "value": "gov-subsidy-claim.top", "recall": False}, headers=h)
    assert again.json()["added"] is False
    assert c.post(f"{API}/indicators", json={"kind": "domain", "value": "not a domain"}, headers=h).status_code == 422
    assert c.post(f"{API}/indicators", json={"kind": "colour", "value": "x"}, headers=h).status_code == 422
    assert env.audit("indicator.add", "domain:gov-subsidy-claim.top")[0]["actor"] == "analyst"


def test_import_indicator_files(env: WebEnv) -> None:
    c, h = env.client, env.as_role("admin")
    csv_text = b"kind,value,source\nsender,bad@phish.example,feed\nsha256," + b"ab" * 32 + b",feed\n"
    r = c.post(f"{API}/indicators/import", files={"file": ("feed.csv", csv_text, "text/csv")}, data={"recall": "false"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["counts"] == {"sender": 1, "sha256": 1}
    stix = {
        "type": "bundle", "id": "bundle--1", "objects": [
            {"type": "indicator", "id": "indicator--1", "pattern_type": "stix",
             "pattern": "[url:value = 'https://gov-subsidy-claim.top/apply?token=8f3a2c']", "name": "qr wave"},
        ],
    }
    r = c.post(f"{API}/indicators/import", files={"file": ("wave.json", json.dumps(stix).encode(), "application/json")}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["counts"] == {"url": 1} and [x["copies"] for x in r.json()["recalls"]] == [2]
    values = {i["value"] for i in c.get(f"{API}/indicators", headers=h).json()["items"]}
    assert {"bad@phish.example", "https://gov-subsidy-claim.top/apply?token=8f3a2c"} <= values
    bad = c.post(f"{API}/indicators/import", files={"file": ("x.json", b"{not json", "application/json")}, headers=h)
    assert bad.status_code == 422
    empty = c.post(f"{API}/indicators/import", files={"file": ("x.txt", b"# nothing\n", "text/plain")}, headers=h)
    assert empty.status_code == 422
    assert len(env.audit("indicator.import")) == 2


# -- rules ---------------------------------------------------------------------------------

RULE = """id: lure_test_invoice_word
name: Test invoice word
description: The subject says test-invoice.
severity: low
symbol: TEST_INVOICE_WORD
score: 1.0
expression: subject.contains("test-invoice")
samples:
  hit: [hit.eml]
  miss: [miss.eml]
"""


def test_rules_list_disable_enable_upload_check(env: WebEnv) -> None:
    c, h = env.client, env.as_role("admin")
    rules = c.get(f"{API}/rules", headers=env.as_role("auditor")).json()["items"]
    assert any(r["id"] == "qr_only_message" and r["enabled"] and r["source"] == "builtin" for r in rules)
    assert c.post(f"{API}/rules/qr_only_message/disable", headers=h).json() == {"id": "qr_only_message", "enabled": False}
    assert "qr_only_message" in (env.settings.data_path / "rules-disabled.txt").read_text()
    assert not next(r for r in c.get(f"{API}/rules", headers=h).json()["items"] if r["id"] == "qr_only_message")["enabled"]
    assert c.post(f"{API}/rules/qr_only_message/enable", headers=h).json()["enabled"] is True
    assert c.post(f"{API}/rules/no_such_rule/disable", headers=h).status_code == 404
    hit = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: your test-invoice\r\n\r\nhi\r\n"
    miss = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hello\r\n\r\nhi\r\n"
    files = [
        ("file", ("lure_test_invoice_word.yml", RULE.encode(), "application/yaml")),
        ("samples", ("hit.eml", hit, "message/rfc822")),
        ("samples", ("miss.eml", miss, "message/rfc822")),
    ]
    r = c.post(f"{API}/rules/upload", files=files, headers=h)
    assert r.status_code == 201, r.text
    site = env.settings.data_path / "rules"
    assert (site / "lure_test_invoice_word.yml").is_file() and (site / "samples" / "hit.eml").is_file()
    assert any(x["id"] == "lure_test_invoice_word" and x["source"] == "site" for x in c.get(f"{API}/rules", headers=h).json()["items"])
    swapped = [files[0], ("samples", ("hit.eml", miss, "message/rfc822")), ("samples", ("miss.eml", hit, "message/rfc822"))]
    bad = c.post(f"{API}/rules/upload", files=swapped, headers=h)
    assert bad.status_code == 422 and any("must hit" in p for p in bad.json()["detail"]["problems"])
    broken = c.post(f"{API}/rules/upload", files=[("file", ("x_y.yml", b"id: [", "application/yaml"))], headers=h)
    assert broken.status_code == 422
    chk = c.post(f"{API}/rules/check", params={"samples": "false"}, headers=h).json()
    assert chk["ok"] is True and chk["rules"] >= 7
    assert [a["target"] for a in env.audit("rule.disable")] == ["qr_only_message"]
    assert env.audit("rule.upload", "lure_test_invoice_word")


# -- statistics, audit, incidents ----------------------------------------------------------


def test_statistics(env: WebEnv) -> None:
    s = env.client.get(f"{API}/stats", params={"days": 3}, headers=env.as_role("auditor")).json()
    assert len(s["days"]) == 3 and s["totals"]["messages"] == 3
    today = s["days"][-1]
    assert today["total"] == 3 and today["by_action"] == {"deliver": 2, "quarantine": 1}
    assert s["totals"]["threats"] == 1 and s["totals"]["qr"] == 1
    assert s["top_targeted_recipients"] == [{"recipient": RECIPIENTS[0], "threats": 1}]
    assert {d["domain"] for d in s["top_sender_domains"]} >= {"victim-corp.com", "letters.example"}
    assert set(s["categories"]) == {"phishing", "spam", "malware", "qr", "impersonation", "internal"}
    # Another copy of the threat to the same person, as another sender typed the address: one person.
    from mailmoat.store.models import DeliveryRow

    with env.store.session() as db:
        db.add(DeliveryRow(message_id=env.ids["held"], recipient=RECIPIENTS[0].upper(), mailbox=RECIPIENTS[0],
                           tracking_id=f"{env.ids['held']}-upper", status="held"))
        db.commit()
    s = env.client.get(f"{API}/stats", params={"days": 3}, headers=env.as_role("auditor")).json()
    assert s["top_targeted_recipients"] == [{"recipient": RECIPIENTS[0], "threats": 2}]


def record_wave_copy(env: WebEnv, sender: str, action: str, dest: str = "gov-subsidy-2026.web.app", hours_ago: float = 1.0) -> str:
    """A recorded inbound message that the wave sign marked (as the gateway records one)."""
    from mailmoat.model import Action, Envelope, Finding, Verdict
    from mailmoat.parse import parse

    raw = f"From: Finance <{sender}>\r\nSubject: Subsidy\r\n\r\nhttps://{dest}/claim\r\n".encode()
    sign = Finding("LINK_DOMAIN_WAVE", 3.0, f"{dest} ...", "wave", "campaign", {"domain": dest, "kind": "url_host"})
    e = Envelope(sender, [RECIPIENTS[0]], received_at=time.time() - hours_ago * 3600)
    env.store.record_message(e, parse(raw), Verdict(Action(action), 11.0 if action == "quarantine" else 7.0, [sign]), "")
    return e.id


def test_statistics_list_the_waves_recognised(env: WebEnv) -> None:
    assert env.client.get(f"{API}/stats", params={"days": 3}, headers=env.as_role("auditor")).json()["waves"] == []
    record_wave_copy(env, "a@one.example", "tag", hours_ago=5)
    record_wave_copy(env, "b@two.example", "quarantine", hours_ago=2)
    record_wave_copy(env, "c@two.example", "quarantine", hours_ago=1)
    record_wave_copy(env, "d@four.example", "tag", dest="other-lure.example", hours_ago=30)
    record_wave_copy(env, "e@five.example", "tag", dest="long-ago.example", hours_ago=24 * 10)  # before the period
    got = env.client.get(f"{API}/stats", params={"days": 3}, headers=env.as_role("auditor")).json()["waves"]
    assert [w["domain"] for w in got] == ["gov-subsidy-2026.web.app", "other-lure.example"]  # the latest first
    first = got[0]
    assert (first["messages"], first["held"], first["senders"]) == (3, 2, 2)
    assert first["last_seen"] - first["first_seen"] > 3.9 * 3600


def test_classifier_status_fresh_trained_and_damaged(env: WebEnv) -> None:
    import random

    from mailmoat.classify import message_tokens, model_path
    from mailmoat.classify.nearcopy import sketch
    from mailmoat.cli.train import train_dirs
    from mailmoat.parse import parse
    from tests.support.mailgen import synthetic_eml

    fresh = env.client.get(f"{API}/classifier", headers=env.as_role("auditor")).json()
    assert fresh["enabled"] and not fresh["trained"] and fresh["messages"] is None and not fresh["error"]
    assert fresh["path"].endswith("bayes.model") and fresh["learn_every_hours"] == 24 and fresh["near_copies"] == 0

    rng = random.Random(9)
    for label, spam in (("ham", False), ("spam", True), ("phish", True)):
        d = env.settings.data_path / "corpus" / label
        d.mkdir(parents=True)
        for i in range(4 if label == "phish" else 6):
            (d / f"{i}.eml").write_bytes(synthetic_eml(rng, spam, chinese=False))
    corpus = env.settings.data_path / "corpus"
    train_dirs(env.settings, [corpus / "ham"], [corpus / "spam"], [corpus / "phish"], qr=False)
    state = env.client.get(f"{API}/classifier", headers=env.as_role("auditor")).json()
    assert state["trained"] and state["messages"] == {"ham": 6, "spam": 6, "phish": 4}
    # Every spam and phishing message long enough to compare is remembered for near-copy matching.
    assert state["near_copies"] == sum(
        sketch(message_tokens(parse((corpus / k / f).read_bytes()))) is not None
        for k in ("spam", "phish") for f in os.listdir(corpus / k)
    ) > 0
    assert state["tokens"] > 50 and abs(state["saved_at"] - time.time()) < 600 and state["format"] == "mailmoat-bayes/3"
    text = env.client.get("/metrics").text
    assert "mailmoat_classifier_trained 1.0" in text and 'mailmoat_classifier_messages{label="phish"} 4.0' in text
    assert f"mailmoat_near_copies {float(state['near_copies'])}" in text

    model_path(env.settings).write_bytes(b'{"format":"mailmoat-bayes/3"garbage')
    broken = env.client.get(f"{API}/classifier", headers=env.as_role("auditor")).json()
    assert not broken["trained"] and "damaged" in broken["error"]
    assert env.client.get(f"{API}/classifier").status_code == 401


def test_audit_log_filters(env: WebEnv) -> None:
    c = env.client
    c.post(f"{API}/quarantine/{env.ids['held']}/delete", json={}, headers=env.as_role("analyst"))
    c.post(f"{API}/rules/qr_only_message/disable", headers=env.as_role("admin"))
    h = env.as_role("auditor")
    all_rows = c.get(f"{API}/audit", headers=h).json()
    assert all_rows["total"] >= 2 and all_rows["items"][0]["action"] == "rule.disable"
    q = c.get(f"{API}/audit", params={"action": "quarantine."}, headers=h).json()["items"]
    assert [(x["action"], x["actor"], x["target"]) for x in q] == [("quarantine.delete", "analyst", env.ids["held"])]
    assert c.get(f"{API}/audit", params={"actor": "admin", "since": "1h"}, headers=h).json()["items"][0]["action"] == "rule.disable"
    assert c.get(f"{API}/audit", params={"since": "soon"}, headers=h).status_code == 422


def test_incidents_list_show_release(env: WebEnv) -> None:
    h = env.as_role("auditor")
    r = env.client.get(f"{API}/incidents", headers=h).json()
    assert env.client.get(f"{API}/incidents/x", headers=h).status_code == 404
    assert env.client.post(f"{API}/incidents/x/release", json={}, headers=env.as_role("analyst")).status_code == 404
    if not r["available"]:  # without the accounts package the list is empty
        assert r == {"items": [], "available": False}
        return
    assert r["items"] == []
    from mailmoat.store.accounts_models import IncidentRow

    with env.store.session() as s:
        s.add(IncidentRow(id="INC1", account="zhang.wei@victim-corp.com", state="open", opened_at=time.time(), reasons=["burst"]))
    items = env.client.get(f"{API}/incidents", headers=h).json()["items"]
    assert [i["id"] for i in items] == ["INC1"]
    assert env.client.get(f"{API}/incidents/INC1", headers=h).json()["account"] == "zhang.wei@victim-corp.com"
    assert env.client.post(f"{API}/incidents/INC1/release", json={"reason": "ok"}, headers=h).status_code == 403
    rel = env.client.post(f"{API}/incidents/INC1/release", json={"reason": "password reset"}, headers=env.as_role("analyst"))
    assert rel.status_code == 200, rel.text
    rows = env.audit("incident.release", "INC1")
    assert len(rows) == 1 and rows[0]["actor"] == "analyst"
    assert env.client.post(f"{API}/incidents/INC1/release", json={}, headers=env.as_role("analyst")).status_code == 409


# -- users and tokens ----------------------------------------------------------------------


def test_users_and_tokens(env: WebEnv) -> None:
    c, h = env.client, env.as_role("admin")
    r = c.post(f"{API}/users", json={"username": "Wang.Fang@corp.example", "password": "long enough pw", "role": "analyst"}, headers=h)
    assert r.status_code == 201 and r.json()["username"] == "wang.fang@corp.example"
    assert c.post(f"{API}/users", json={"username": "wang.fang@corp.example", "password": "long enough pw", "role": "analyst"}, headers=h).status_code == 409
    assert c.post(f"{API}/users", json={"username": "x", "password": "short", "role": "analyst"}, headers=h).status_code == 422
    assert c.post(f"{API}/users", json={"username": "y", "password": "long enough pw", "role": "god"}, headers=h).status_code == 422
    names = [u["username"] for u in c.get(f"{API}/users", headers=h).json()["items"]]
    assert names == ["admin", "analyst", "auditor", "wang.fang@corp.example"]
    assert c.patch(f"{API}/users/wang.fang@corp.example", json={"role": "auditor"}, headers=h).json()["role"] == "auditor"
    tok = c.post(f"{API}/tokens", json={"username": "wang.fang@corp.example", "name": "siem"}, headers=h).json()
    assert tok["token"].startswith("mmt_")
    bearer = {"Authorization": f"Bearer {tok['token']}"}
    assert c.get(f"{API}/auth/me", headers=bearer).json()["role"] == "auditor"
    listed = c.get(f"{API}/tokens", headers=h).json()["items"]
    assert all("token" not in t for t in listed) and any(t["name"] == "siem" for t in listed)
    assert c.delete(f"{API}/tokens/{tok['id']}", headers=h).json()["revoked"] is True
    assert c.get(f"{API}/auth/me", headers=bearer).status_code == 401
    tok2 = c.post(f"{API}/tokens", json={"username": "wang.fang@corp.example"}, headers=h).json()["token"]
    assert c.patch(f"{API}/users/wang.fang@corp.example", json={"disabled": True}, headers=h).json()["disabled"] is True
    assert c.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {tok2}"}).status_code == 401
    assert c.patch(f"{API}/users/wang.fang@corp.example", json={"password": "another long one"}, headers=h).status_code == 200
    assert c.delete(f"{API}/users/wang.fang@corp.example", headers=h).json()["deleted"] is True
    assert c.delete(f"{API}/users/wang.fang@corp.example", headers=h).status_code == 404
    assert c.patch(f"{API}/users/admin", json={"role": "auditor"}, headers=h).status_code == 409  # the last admin
    assert c.delete(f"{API}/users/admin", headers=h).status_code == 409
    for action in ("user.create", "user.update", "user.delete", "token.create", "token.revoke"):
        assert env.audit(action)[0]["actor"] == "admin", action


# -- health, metrics, server, CLI ----------------------------------------------------------


def test_health_and_readiness(env: WebEnv) -> None:
    c = env.client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["checks"] == {"database": "ok", "spool": "ok"}
    spool = env.settings.spool_dir
    for p in spool.iterdir():
        p.rmdir() if p.is_dir() else p.unlink()
    spool.rmdir()
    spool.write_text("not a directory")
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["spool"].startswith("error")


def test_metrics_from_this_process_and_the_store(env: WebEnv) -> None:
    _, _, verdict = __import__("tests.support.webkit", fromlist=["scanned"]).scanned()["qr"]
    act = verdict.action.value  # whatever today's policy decides for the QR sample
    before = metrics.MESSAGES.labels(direction="inbound", action=act)._value.get()
    metrics.record_verdict("inbound", verdict, 0.2)
    text = env.client.get("/metrics").text
    assert f'mailmoat_messages_total{{action="{act}",direction="inbound"}} {before + 1}' in text
    assert 'mailmoat_symbol_hits_total{symbol="QR_IN_CID_ATTACHMENT"}' in text
    assert 'mailmoat_queue_depth{state="held"} 1.0' in text
    assert "mailmoat_scan_seconds_bucket" in text and "mailmoat_delivery_seconds" in text
    assert 'mailmoat_messages_last_24h{action="deliver",direction="inbound"} 2.0' in text
    assert "mailmoat_classifier_trained 0.0" in text  # a fresh install: worth an alert


def test_metrics_when_the_store_does_not_answer(tmp_path: Path) -> None:
    class DeadStore:
        def session(self) -> Any:
            raise OSError("connection refused")

    settings = Settings(data_dir=str(tmp_path / "var"))
    names = {m.name for m in metrics.StoreCollector(DeadStore(), settings).collect()}
    # The store's gauges are missing and say so; the classifier's, read from its file, are there.
    assert "mailmoat_store_up" in names and "mailmoat_queue_depth" not in names
    assert {"mailmoat_classifier_trained", "mailmoat_classifier_messages"} <= names


def test_metrics_from_worker_processes_are_added_up(env: WebEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers are separate interpreters: they write multiprocess files that /metrics sums with its own values."""
    monkeypatch.setenv(metrics.ENV_DIR, "")  # restored after the test
    d = metrics.prepare_multiprocess(env.settings)
    assert os.environ[metrics.ENV_DIR] == str(d.resolve())
    code = (
        "from mailmoat import metrics\n"
        "from mailmoat.model import Action, Finding, Verdict\n"
        "v = Verdict(Action.QUARANTINE, 9.0, [Finding('ANALYZER_FAILED', 1.0, 'timeout', 'runner', 'system', {'analyzer': 'clamav'})], [])\n"
        "for _ in range(3): metrics.record_verdict('internal', v, 0.05)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))
    here = metrics.SCAN_SECONDS._sum.get()  # this process's own observations are added in too
    # (earlier tests in this process may have counted messages of their own)
    own = metrics.MESSAGES.labels(direction="internal", action="quarantine")._value.get()
    own_failed = metrics.ANALYZER_FAILURES.labels(analyzer="clamav")._value.get()
    text = env.client.get("/metrics").text
    assert f'mailmoat_messages_total{{action="quarantine",direction="internal"}} {own + 6.0}' in text
    assert f'mailmoat_analyzer_failures_total{{analyzer="clamav"}} {own_failed + 6.0}' in text
    total = float(re.search(r"^mailmoat_scan_seconds_sum (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert total == pytest.approx(here + 6 * 0.05)


def test_serve_web_runs_in_an_existing_loop(tmp_path: Path) -> None:
    from mailmoat.store.db import Store
    from mailmoat.web.server import serve_web

    settings = Settings()
    settings.data_dir = str(tmp_path / "var")
    store = Store(settings.db_url, raw_dir=settings.raw_dir)

    async def main() -> tuple[int, int]:
        stop = asyncio.Event()
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(serve_web(settings, store, "127.0.0.1", 0, stop, started=port.set_result))
        p = await asyncio.wait_for(port, 30)
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{p}/healthz")).status_code
            me = (await client.get(f"http://127.0.0.1:{p}/api/v1/auth/me")).status_code
        stop.set()
        await asyncio.wait_for(task, 30)
        return health, me

    try:
        assert asyncio.run(main()) == (200, 401)
    finally:
        store.close()


def test_users_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailmoat.cli import app

    runner = CliRunner()
    data = str(tmp_path / "var")
    monkeypatch.delenv("MAILMOAT_ADMIN_PASSWORD", raising=False)
    first = runner.invoke(app, ["users", "ensure-admin", "--data-dir", data])
    assert first.exit_code == 0, first.output
    assert "password (shown once): " in first.output
    password = first.output.rsplit(": ", 1)[1].strip()
    again = runner.invoke(app, ["users", "ensure-admin", "--data-dir", data])
    assert "nothing to do" in again.output
    add = runner.invoke(app, ["users", "add", "ops", "--role", "auditor", "--password-stdin", "--data-dir", data], input="a long password\n")
    assert add.exit_code == 0, add.output
    lst = runner.invoke(app, ["users", "list", "--data-dir", data]).output
    assert "admin" in lst and "ops" in lst and "auditor" in lst
    tok = runner.invoke(app, ["users", "token", "ops", "--name", "siem", "--data-dir", data])
    assert tok.exit_code == 0 and tok.output.strip().startswith("mmt_")
    pw = runner.invoke(app, ["users", "passwd", "ops", "--password-stdin", "--data-dir", data], input="short\n")
    assert pw.exit_code != 0
    settings = Settings()
    settings.data_dir = data
    from mailmoat.store.db import Store
    from mailmoat.web import create_app

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        from fastapi.testclient import TestClient

        with TestClient(create_app(settings, store)) as c:
            assert c.post(f"{API}/auth/login", json={"username": "admin", "password": password}).status_code == 200
            assert c.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {tok.output.strip()}"}).json()["role"] == "auditor"
    finally:
        store.close()
    env_dir = str(tmp_path / "var2")
    monkeypatch.setenv("MAILMOAT_ADMIN_PASSWORD", "from the environment")
    r = runner.invoke(app, ["users", "ensure-admin", "--data-dir", env_dir])
    assert r.exit_code == 0 and "from the environment" not in r.output and "MAILMOAT_ADMIN_PASSWORD" in r.output


def test_a_held_message_marked_a_threat_stays_held_and_unmarked_is_as_it_was(env: WebEnv) -> None:
    """Marking a held message a threat keeps it in quarantine and out of reach of a release; taking
    the mark back restores what it was, held or deleted, rather than calling it processed."""
    c, h, mid = env.client, env.as_role("analyst"), env.ids["held"]
    assert c.post(f"{API}/messages/{mid}/condemn", json={"reason": "campaign"}, headers=h).status_code == 200
    listed = c.get(f"{API}/quarantine", headers=h).json()
    assert [m["id"] for m in listed["items"]] == [mid] and listed["items"][0]["status"] == "condemned"
    assert c.get(f"{API}/status", headers=h).json()["held"] == 1
    r = c.post(f"{API}/quarantine/{mid}/release", json={}, headers=h)
    assert r.status_code == 409 and "marked as a threat" in r.json()["detail"]
    r = c.post(f"{API}/messages/{mid}/uncondemn", json={}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "quarantined"
    assert [m["id"] for m in c.get(f"{API}/quarantine", headers=h).json()["items"]] == [mid]
    # Deleted, then marked and unmarked: still deleted, and no release brings it back.
    assert c.post(f"{API}/quarantine/{mid}/delete", json={}, headers=h).status_code == 200
    assert c.post(f"{API}/messages/{mid}/condemn", json={}, headers=h).status_code == 200
    assert c.post(f"{API}/messages/{mid}/uncondemn", json={}, headers=h).json()["status"] == "deleted"
    assert c.post(f"{API}/quarantine/{mid}/release", json={}, headers=h).status_code == 409
    assert env.store.get_message(mid).status == "deleted"


def test_marking_a_held_message_a_threat_answers_its_release_requests(env: WebEnv) -> None:
    """A recipient asked to have the held message released; an analyst marks it a threat: the
    request is declined and the recipient told, rather than the request vanishing unanswered."""
    from mailmoat.digest.requests import for_message, record_request

    c, h, mid = env.client, env.as_role("analyst"), env.ids["held"]
    assert record_request(env.store, mid, RECIPIENTS[0])
    before = len(visible_copies(env.settings, RECIPIENTS[0]))
    assert c.post(f"{API}/messages/{mid}/condemn", json={"reason": "campaign"}, headers=h).status_code == 200
    with env.store.session() as s:
        (req,) = for_message(s, mid)
    assert req["state"] == "declined" and req["note"] == "marked as a threat" and req["declined_by"] == "analyst"
    assert len(visible_copies(env.settings, RECIPIENTS[0])) == before + 1  # the notice
    assert env.audit("quarantine.decline", mid)[0]["detail"]["recipient"] == RECIPIENTS[0]


def test_two_markings_at_once_mark_a_message_once(env: WebEnv) -> None:
    """Two colleagues' reports condemning one message on two workers at the same moment: both read
    it open, one marks it; the other's update finds it marked and does nothing (one audit row)."""
    from mailmoat.store.models import MessageRow
    from mailmoat.store.quarantine import mark_condemned

    mid = env.ids["clean"]
    with env.store.session() as first, env.store.session() as second:
        a, b = first.get(MessageRow, mid), second.get(MessageRow, mid)
        assert a is not None and b is not None and a.status == b.status == "processed"
        assert mark_condemned(first, a, "auto:reports", once=True) == []
        first.commit()
        assert mark_condemned(second, b, "auto:reports", once=True) is None
    assert len(env.audit("message.condemn", mid)) == 1
    assert env.store.get_message(mid).status == "condemned"
