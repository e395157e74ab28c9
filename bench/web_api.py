"""Web API latency over a store of N recorded messages: search (recall selectors), detail, statistics, login.

    .venv/bin/python bench/web_api.py [--messages 20000] [--db sqlite:///... | postgresql://...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from fastapi.testclient import TestClient
from sqlalchemy import insert

from mailmoat.config import Settings
from mailmoat.model import Action, Envelope, Finding, Verdict
from mailmoat.parse import parse
from mailmoat.store.db import Store
from mailmoat.store.models import DeliveryRow
from mailmoat.web import create_app
from mailmoat.web.auth import create_token, create_user


def seed(store: Store, n: int) -> str:
    raw = b"From: a@b.example\r\nTo: c@corp.example\r\nSubject: hello\r\nMessage-ID: <x@b.example>\r\n\r\nsee https://b.example/x\r\n"
    msg = parse(raw)
    last = ""
    t0 = time.time()
    for i in range(n):
        dom = f"sender{i % 500}.example"
        msg.from_.addr = f"user{i % 50}@{dom}"
        env = Envelope(mail_from=msg.from_.addr, rcpt_tos=[f"user{i % 300}@corp.example"], size=len(raw), received_at=t0 - (i % 14) * 86400)
        phish = i % 20 == 0
        findings = [Finding("QR_IN_CID_ATTACHMENT", 4.0, f"QR code 'https://qr{i}.top/a' in cid image", "qr", "qr")] if phish else []
        verdict = Verdict(Action.QUARANTINE if phish else Action.DELIVER, 12.0 if phish else 0.0, findings, [])
        store.record_message(env, msg, verdict, "")
        with store.session() as s:
            s.execute(insert(DeliveryRow), [{
                "message_id": env.id, "recipient": env.rcpt_tos[0], "mailbox": env.rcpt_tos[0], "tracking_id": env.tracking_id(0),
                "status": "held" if phish else "delivered", "attempts": 1, "next_attempt": 0.0, "reply": "", "location": "",
                "delivered_at": t0, "updated_at": t0,
            }])
        last = env.id
    return last


def timed(client: TestClient, path: str, headers: dict[str, str], runs: int = 20, **params: str) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(path, headers=headers, params=params)
        samples.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--db", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings()
        settings.data_dir = tmp
        if args.db:
            settings.db = args.db
        store = Store(settings.db_url, raw_dir=settings.raw_dir)
        t = time.perf_counter()
        last = seed(store, args.messages)
        print(f"seeded {args.messages} messages in {time.perf_counter() - t:.1f}s ({settings.db_url.split(':')[0]})")
        with store.session() as s:
            token = create_token(s, create_user(s, "bench", "bench password", "admin"), "bench")[1]
        h = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(settings, store)) as c:
            rows = [
                ("search, newest 50", timed(c, "/api/v1/messages", h)),
                ("search sender domain", timed(c, "/api/v1/messages", h, sender="sender7.example")),
                ("search recipient", timed(c, "/api/v1/messages", h, recipient="user7@corp.example")),
                ("search qr substring", timed(c, "/api/v1/messages", h, qr="qr40.top")),
                ("search symbol + since", timed(c, "/api/v1/messages", h, symbol="QR_IN_CID_ATTACHMENT", since="3d")),
                ("search page 100", timed(c, "/api/v1/messages", h, offset="5000")),
                ("message detail", timed(c, f"/api/v1/messages/{last}", h)),
                ("quarantine list", timed(c, "/api/v1/quarantine", h)),
                ("statistics 14 days", timed(c, "/api/v1/stats", h, runs=5)),
                ("/metrics", timed(c, "/metrics", {}, runs=5)),
            ]
            t = time.perf_counter()
            for _ in range(3):
                c.post("/api/v1/auth/login", json={"username": "bench", "password": "bench password"})
            rows.append(("login (Argon2id verify)", (time.perf_counter() - t) / 3 * 1000))
        for name, ms in rows:
            print(f"{name:28} {ms:8.1f} ms (median)")
        store.close()


if __name__ == "__main__":
    main()
