"""Compromised-account containment: detection delay and colleagues still holding the wave after recall.

A normal week of internal mail (30 accounts) is replayed to build profiles; then one account sends
the subsidy-fraud notice to N colleagues, one message each, from a new IP as "财务部". Two lures:
the QR (cid) notice the content engines know, and a bland link the content engines do not know
(only the account's behaviour gives it away, so some copies land and must be recalled).

    PYTHONPATH=. .venv/bin/python bench/account_containment.py [--colleagues 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from tests.support import accountsim as sim

from mailmoat.accounts.incidents import show_incident
from mailmoat.config import Settings
from mailmoat.store.db import Store


async def one(n: int, qr: bool, root: Path) -> dict[str, float]:
    settings = Settings()
    settings.data_dir = str(root / "var")
    org = sim.make_org([f"staff{i:04d}@victim-corp.com" for i in range(n + 1)])
    settings.server.domains = [org.domain]
    settings.accounts.submission_hosts = [sim.MAIL_HOST]
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    sim.replay(store, settings, sim.normal_week(org, time.time() - 3600))
    attacker = org.senders[3]
    driver = sim.Driver(settings, store)
    sent: list[sim.Sent] = []
    idx, at, iid = 0, 0.0, ""
    t0 = time.time()
    try:
        for i, rcpt in enumerate([c for c in org.colleagues if c != attacker], 1):
            s = await driver.send(sim.internal_env(attacker, [rcpt]), sim.fraud_mail(org, attacker, rcpt, qr=qr))
            sent.append(s)
            if s.incident is not None and not idx:
                idx, at, iid = i, s.incident.opened_at, s.incident.id
    finally:
        driver.close()
    total = time.time() - t0
    holders = sim.maildir_holders(settings.mail_dir, org.colleagues, {s.envelope.id for s in sent})
    detail = show_incident(store, iid) if iid else None
    store.close()
    return {
        "messages": float(idx),
        "seconds": at - t0 if idx else float("nan"),
        "delivered_before": float(sum(1 for s in sent[:idx] if s.action in ("deliver", "tag"))),
        "recalled": float(detail["recalled_copies"]) if detail else 0.0,
        "held_after": float(sum(1 for s in sent[idx:] if s.action == "quarantine")),
        "holders": float(len(holders)),
        "ms_per_message": 1000 * total / len(sent),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--colleagues", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger("mailmoat").setLevel(logging.ERROR)  # containment warnings would drown the table
    print(f"{args.colleagues} colleagues, {args.rounds} rounds per lure; Maildir store, embedded SQLite")
    print("lure | contained after msg | seconds after first | delivered before | recalled | held after | still holding | ms/msg")
    for qr in (True, False):
        runs = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="mm-acct-") as d:
                runs.append(asyncio.run(one(args.colleagues, qr, Path(d))))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        label = "QR cid notice" if qr else "unknown link lure"
        print(f"{label} | {med['messages']:.0f} | {med['seconds']:.2f} | {med['delivered_before']:.0f} | "
              f"{med['recalled']:.0f} | {med['held_after']:.0f} | {med['holders']:.0f} | {med['ms_per_message']:.1f}")


if __name__ == "__main__":
    main()
