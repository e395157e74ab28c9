"""API security, generated from the OpenAPI document so that no endpoint is missed: authentication, the role
table, CSRF on session writes, login rate limits, hashed secrets, and an audit row for every state change."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.webkit import PASSWORD, RECIPIENTS, WebEnv, web_env

API = "/api/v1"
ALL = {"admin", "analyst", "auditor"}
UNSAFE = {"post", "put", "patch", "delete"}
# POST endpoints that change nothing (they compute an answer): no audit row expected.
READ_ONLY_POSTS = {("post", f"{API}/recall/preview"), ("post", f"{API}/rules/check")}


def expected_roles(method: str, path: str) -> set[str]:
    """The role table of the issue: admin everything; analyst search, quarantine, recall; auditor read-only + audit log."""
    p = path[len(API) :]
    if p.startswith(("/users", "/tokens")):
        return {"admin"}
    if p.startswith("/audit"):
        return {"admin", "auditor"}
    if p.startswith("/auth/"):
        return set(ALL)
    if p.endswith("/raw"):
        return {"admin", "analyst"}  # message bodies leave the system: not for the read-only role
    if method == "get":
        return set(ALL)
    # Removing a recipient's safe sender only makes filtering stricter, like a deny entry: analysts may.
    removes_entry = method == "delete" and p.startswith("/lists") and not p.startswith("/lists/safe")
    if p.startswith("/rules") or p.endswith("/approve") or p == "/lists/allow" or removes_entry:
        return {"admin"}  # an allow entry waves mail past every engine
    return {"admin", "analyst"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebEnv]:
    with web_env(tmp_path_factory.mktemp("websec")) as e:
        yield e


def operations(env: WebEnv) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path template, concrete path, operation) for every API operation in the OpenAPI document."""
    doc = env.client.get(f"{API}/openapi.json", headers=env.as_role("auditor")).json()
    out = []
    for template, item in doc["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            path = template
            for prm in op.get("parameters", []):
                if prm["in"] == "path":
                    value = "999" if prm.get("schema", {}).get("type") == "integer" else "NOPE"
                    path = path.replace("{" + prm["name"] + "}", value)
            out.append((method, template, path, op))
    assert len(out) > 30
    return out


def call(env: WebEnv, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    return env.client.request(method.upper(), path, headers=headers or {}).status_code


def protected(env: WebEnv) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [o for o in operations(env) if o[1] != f"{API}/auth/login"]


def test_every_api_path_is_under_the_prefix_and_declares_its_roles(env: WebEnv) -> None:
    for method, template, _, op in operations(env):
        assert template.startswith(API), template
        if template == f"{API}/auth/login":
            assert "x-mailmoat-roles" not in op
            continue
        assert set(op["x-mailmoat-roles"]) == expected_roles(method, template), (method, template)


def test_the_openapi_document_needs_a_login_too(env: WebEnv) -> None:
    env.client.cookies.clear()
    assert env.client.get(f"{API}/openapi.json").status_code == 401
    assert env.client.get(f"{API}/openapi.json", headers=env.as_role("auditor")).json()["info"]["title"] == "mailmoat"
    assert env.client.get(f"{API}/docs").status_code == 404  # no Swagger page pulling scripts from a CDN


def test_unauthenticated_requests_are_refused(env: WebEnv) -> None:
    env.client.cookies.clear()
    for method, template, path, _ in protected(env):
        assert call(env, method, path) == 401, (method, template)
        assert call(env, method, path, {"Authorization": "Bearer mmt_forged"}) == 401, (method, template)
        assert call(env, method, path, {"Authorization": "Basic YWRtaW46eA=="}) == 401, (method, template)
        assert call(env, method, path, {"Cookie": "mm_session=forged; mm_csrf=x", "X-CSRF-Token": "x"}) == 401, (method, template)


def test_under_privileged_roles_are_refused(env: WebEnv) -> None:
    checked = 0
    for method, template, path, _ in protected(env):
        for role in ALL - expected_roles(method, template):
            assert call(env, method, path, env.as_role(role)) == 403, (role, method, template)
            checked += 1
    assert checked > 30


def test_admitted_roles_get_through_on_reads(env: WebEnv) -> None:
    for method, template, path, _ in protected(env):
        if method != "get" or template.endswith("/events"):
            continue
        for role in expected_roles(method, template):
            assert call(env, method, path, env.as_role(role)) not in (401, 403), (role, method, template)


def test_session_writes_need_the_csrf_token(env: WebEnv) -> None:
    c = env.client
    c.cookies.clear()
    r = c.post(f"{API}/auth/login", json={"username": "admin", "password": PASSWORD})
    cookies = r.headers.get_list("set-cookie")
    session_cookie = next(x for x in cookies if x.startswith("mm_session="))
    assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie.replace("Strict", "strict")
    assert "HttpOnly" not in next(x for x in cookies if x.startswith("mm_csrf="))  # the page script must read it
    csrf = r.json()["csrf"]
    for method, template, path, _ in protected(env):
        if method in UNSAFE:
            assert call(env, method, path) == 403, (method, template)
            assert call(env, method, path, {"X-CSRF-Token": "wrong"}) == 403, (method, template)
        else:
            assert call(env, method, path) not in (401, 403), (method, template)  # reads need no CSRF token
    # The header must also match the cookie (double submit), not only the session.
    session = c.cookies.get("mm_session")
    c.cookies.clear()
    body = {"kind": "domain", "value": "csrf-ok.example", "recall": False}
    mismatch = {"Cookie": f"mm_session={session}; mm_csrf=other", "X-CSRF-Token": csrf}
    assert c.post(f"{API}/indicators", json=body, headers=mismatch).status_code == 403
    forged_pair = {"Cookie": f"mm_session={session}; mm_csrf=forged", "X-CSRF-Token": "forged"}
    assert c.post(f"{API}/indicators", json=body, headers=forged_pair).status_code == 403  # must be the session's own token
    good = {"Cookie": f"mm_session={session}; mm_csrf={csrf}", "X-CSRF-Token": csrf}
    assert c.post(f"{API}/indicators", json=body, headers=good).status_code == 201
    # Bearer requests are exempt: scripts have no cookies to be forged with.
    c.cookies.clear()
    assert c.post(f"{API}/indicators", json={"kind": "domain", "value": "b.example", "recall": False}, headers=env.as_role("analyst")).status_code == 201
    assert c.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 401


def test_login_rate_limit_per_user_and_per_ip(env: WebEnv) -> None:
    c = env.client
    c.cookies.clear()
    limiter = c.app.state.web.limiter  # type: ignore[attr-defined]
    limiter._fails.clear()
    for _ in range(limiter.per_user):
        assert c.post(f"{API}/auth/login", json={"username": "auditor", "password": "guess guess"}).status_code == 401
    blocked = c.post(f"{API}/auth/login", json={"username": "auditor", "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert c.post(f"{API}/auth/login", json={"username": "analyst", "password": PASSWORD}).status_code == 200
    limiter._fails.clear()
    old = limiter.per_ip
    limiter.per_ip = 3
    try:
        for i in range(3):
            assert c.post(f"{API}/auth/login", data={"username": f"spray{i}", "password": "x" * 12}).status_code == 401
        assert c.post(f"{API}/auth/login", data={"username": "analyst", "password": PASSWORD}).status_code == 429
    finally:
        limiter.per_ip = old
        limiter._fails.clear()
    assert len(env.audit("auth.login_failed")) >= limiter.per_user + 3


def test_secrets_are_stored_hashed(env: WebEnv) -> None:
    from mailmoat.store.web_models import ApiTokenRow, UserRow

    with env.store.session() as s:
        hashes = [u.password_hash for u in s.scalars(select(UserRow))]
        tokens = [t.token_hash for t in s.scalars(select(ApiTokenRow))]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert all(PASSWORD not in h for h in hashes)
    assert tokens and not any(t in tokens for t in env.tokens.values())
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)


def test_raw_bodies_are_never_served_as_html(env: WebEnv) -> None:
    h = env.as_role("admin")
    for mid in env.ids.values():
        for suffix in ("", "/preview"):
            r = env.client.get(f"{API}/messages/{mid}{suffix}", headers=h)
            assert r.headers["content-type"].startswith("application/json")
            assert "sandbox" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
        raw = env.client.get(f"{API}/messages/{mid}/raw", headers=h)
        assert raw.headers["content-type"] == "application/octet-stream"
        assert raw.headers["content-disposition"].startswith("attachment")


# -- every state change leaves an audit row ------------------------------------------------------


class Audited:
    """Runs state-changing calls and checks each left its audit row; remembers which operations it covered."""

    def __init__(self, env: WebEnv) -> None:
        self.env = env
        self.covered: set[tuple[str, str]] = set()

    def __call__(self, method: str, template: str, action: str, *, path: str = "", role: str = "admin", **kw: Any) -> Any:
        from mailmoat.store.audit_models import AuditRow

        with self.env.store.session() as s:
            last = s.scalar(select(AuditRow.id).order_by(AuditRow.id.desc()).limit(1)) or 0
        headers = {**self.env.as_role(role), **kw.pop("headers", {})} if role else kw.pop("headers", {})
        r = self.env.client.request(method.upper(), API + (path or template), headers=headers, **kw)
        assert r.status_code < 300, (method, template, r.status_code, r.text)
        with self.env.store.session() as s:
            rows = s.scalars(select(AuditRow).where(AuditRow.id > last, AuditRow.action == action)).all()
        assert rows, f"{method.upper()} {template} wrote no {action} audit row"
        assert all(row.source for row in rows), "an audit row without its source address"
        self.covered.add((method, API + template))
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


def wait_done(env: WebEnv, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = env.client.get(f"{API}/recall/jobs/{job_id}", headers=env.as_role("admin")).json()
        if not st["running"] and st["state"] not in ("running", "verifying"):
            return
        time.sleep(0.1)
    raise AssertionError("recall job did not finish")


def test_every_state_change_writes_an_audit_row(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        do = Audited(env)
        ids = env.ids
        env.client.cookies.clear()
        login = do("post", "/auth/login", "auth.login", role="", json={"username": "auditor", "password": PASSWORD})
        do("post", "/auth/logout", "auth.logout", role="", headers={"X-CSRF-Token": login["csrf"]})

        env.settings.recall.approval_above = 1
        job = do("post", "/recall/jobs", "recall.plan", role="analyst", json={"mail_id": ids["qr"], "reason": "phish"})
        do("post", "/recall/jobs/{job_id}/approve", "recall.approve", path=f"/recall/jobs/{job['id']}/approve", json={})
        env.client.post(f"{API}/recall/jobs/{job['id']}/run", headers=env.as_role("analyst"))
        wait_done(env, job["id"])
        assert env.audit("recall.run", job["id"])[0]["source"] == "testclient"
        do.covered.add(("post", f"{API}/recall/jobs/{{job_id}}/run"))
        do("post", "/recall/jobs/{job_id}/restore", "recall.restore", path=f"/recall/jobs/{job['id']}/restore", json={})
        env.settings.recall.approval_above = 0
        do("post", "/recall/jobs/from-message/{mail_id}", "recall.plan", path=f"/recall/jobs/from-message/{ids['qr']}", json={})

        from mailmoat.digest.requests import open_requests, record_request

        record_request(env.store, ids["held"], RECIPIENTS[0])  # a recipient's request from a digest
        with env.store.session() as s:
            request_id = open_requests(s)[0][0].id
        do("post", "/quarantine/requests/{request_id}/decline", "quarantine.decline", path=f"/quarantine/requests/{request_id}/decline",
           json={})
        from mailmoat.store.report_models import ReportRow

        with env.store.session() as s:  # a colleague reported the delivered QR message
            s.add(ReportRow(report_id="r1", reporter=RECIPIENTS[1], message_id=ids["qr"], matched_by="tracking_id", subject="",
                            sender="", reported_at=time.time(), dismissed_at=0.0, dismissed_by=""))
        do("post", "/reports/{key}/dismiss", "report.dismiss", path=f"/reports/{ids['qr']}/dismiss", json={})
        do("post", "/quarantine/{mail_id}/release", "quarantine.release", path=f"/quarantine/{ids['held']}/release", json={})
        env.store.set_message_fields(ids["clean"], status="quarantined")
        do("post", "/quarantine/{mail_id}/delete", "quarantine.delete", path=f"/quarantine/{ids['clean']}/delete", json={})
        do("post", "/messages/{mail_id}/condemn", "message.condemn", path=f"/messages/{ids['qr']}/condemn", json={"reason": "x"})
        do("post", "/messages/{mail_id}/uncondemn", "message.uncondemn", path=f"/messages/{ids['qr']}/uncondemn", json={"reason": "x"})

        do("post", "/indicators", "indicator.add", json={"kind": "url", "value": "https://x.example/a", "recall": False})
        do("post", "/indicators/import", "indicator.import", files={"file": ("urls.txt", b"https://y.example/b\n", "text/plain")}, data={"recall": "false"})

        do("post", "/lists/deny", "list.add", role="analyst", json={"kind": "domain", "value": "bad-actor.example"})
        entry = do("post", "/lists/allow", "list.add", json={"kind": "sender", "value": "ceo@partner.example"})
        do("delete", "/lists/{entry_id}", "list.remove", path=f"/lists/{entry['id']}")
        from mailmoat.digest import safe_senders

        safe, _ = safe_senders.add(env.store, RECIPIENTS[0], "deals@offers.example", "digest")
        do("delete", "/lists/safe/{entry_id}", "safe_sender.remove", role="analyst", path=f"/lists/safe/{safe['id']}")

        do("post", "/rules/{rule_id}/disable", "rule.disable", path="/rules/qr_only_message/disable")
        do("post", "/rules/{rule_id}/enable", "rule.enable", path="/rules/qr_only_message/enable")
        sample = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: zz-audit-word\r\n\r\nhi\r\n"
        other = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hello\r\n\r\nhi\r\n"
        rule = (
            b"id: lure_audit_word\nname: Audit word\ndescription: test\nseverity: low\nsymbol: AUDIT_WORD_TEST\nscore: 0.5\n"
            b'expression: subject.contains("zz-audit-word")\nsamples:\n  hit: [a.eml]\n  miss: [b.eml]\n'
        )
        do("post", "/rules/upload", "rule.upload", files=[
            ("file", ("lure_audit_word.yml", rule, "application/yaml")),
            ("samples", ("a.eml", sample, "message/rfc822")), ("samples", ("b.eml", other, "message/rfc822")),
        ])

        do("post", "/users", "user.create", json={"username": "temp", "password": "a long password", "role": "auditor"})
        do("patch", "/users/{username}", "user.update", path="/users/temp", json={"role": "analyst"})
        tok = do("post", "/tokens", "token.create", json={"username": "temp", "name": "t"})
        do("delete", "/tokens/{token_id}", "token.revoke", path=f"/tokens/{tok['id']}")
        do("delete", "/users/{username}", "user.delete", path="/users/temp")

        available = env.client.get(f"{API}/incidents", headers=env.as_role("admin")).json()["available"]
        if available:
            from mailmoat.store.accounts_models import IncidentRow

            with env.store.session() as s:
                s.add(IncidentRow(id="INC9", account="li.na@victim-corp.com", state="open", opened_at=time.time()))
            do("post", "/incidents/{incident_id}/release", "incident.release", path="/incidents/INC9/release", json={})

        unsafe = {
            (m, t) for m, t, _, _ in operations(env) if m in UNSAFE and (m, t) not in READ_ONLY_POSTS
        }
        if not available:
            unsafe.discard(("post", f"{API}/incidents/{{incident_id}}/release"))
        missing = unsafe - do.covered
        assert not missing, f"state-changing endpoints without an audit check: {sorted(missing)}"
        env.client.cookies.clear()
        rows = env.client.get(f"{API}/audit", params={"limit": 1000}, headers=env.as_role("auditor")).json()["items"]
        assert all(r["actor"] and r["at"] > 0 for r in rows)
        assert json.dumps(rows)  # the log is plain JSON for export


def test_another_sites_page_cannot_log_the_visitor_in(env: WebEnv) -> None:
    """Login CSRF: a form on another site posting the attacker's name and password would swap the
    administrator's session for the attacker's account. Browsers say where a post comes from."""
    c = env.client
    form = {"username": "auditor", "password": PASSWORD}
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "https://evil.example"}, {"Origin": "null"}):
        r = c.post(f"{API}/auth/login", data=form, headers=headers)
        assert r.status_code == 403 and "mm_session" not in r.headers.get("set-cookie", ""), headers
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"},
                    {"Origin": "https://console.corp.example", "X-Forwarded-Host": "console.corp.example"}, {}):
        assert c.post(f"{API}/auth/login", data=form, headers=headers).status_code == 200, headers
