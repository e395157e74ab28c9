"""The incidents API (list, show, release) backed by the accounts package."""

from __future__ import annotations

import time
from pathlib import Path

from mailmoat.store.accounts_models import IncidentRow
from tests.support.webkit import web_env

API = "/api/v1"


def test_incidents_api(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        with env.store.session() as s:
            s.add(IncidentRow(id="01INCIDENT0000000000000000", account="li.na@corp.test", state="open", mode="automatic",
                              held=True, opened_at=time.time(), first_suspect_at=time.time() - 60,
                              reasons=["new client IP", "same body sent to 12 colleagues"], evidence={"signals": {}},
                              alerts={}, recall_jobs=[]))
        c = env.client
        items = c.get(f"{API}/incidents", headers=env.as_role("auditor")).json()
        assert items["available"] is True
        assert [i["account"] for i in items["items"]] == ["li.na@corp.test"]
        one = c.get(f"{API}/incidents/01INCIDENT0000000000000000", headers=env.as_role("auditor")).json()
        assert one["held"] is True and one["held_messages"] == [] and one["recalls"] == []
        assert c.get(f"{API}/incidents/NOPE", headers=env.as_role("auditor")).status_code == 404
        denied = c.post(f"{API}/incidents/01INCIDENT0000000000000000/release", json={"reason": "x"}, headers=env.as_role("auditor"))
        assert denied.status_code == 403
        r = c.post(f"{API}/incidents/01INCIDENT0000000000000000/release", json={"reason": "password reset"},
                   headers=env.as_role("analyst"))
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "released" and r.json()["note"] == "password reset"
        again = c.post(f"{API}/incidents/01INCIDENT0000000000000000/release", json={"reason": "x"}, headers=env.as_role("analyst"))
        assert again.status_code == 409
        assert len(env.audit("incident.release", "01INCIDENT0000000000000000")) == 1
