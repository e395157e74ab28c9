"""Quarantine digests at scale: how long one scheduled pass takes over a large quarantine.

usage: .venv/bin/python bench/digest_bench.py [--held 20000] [--recipients 2000]

A fresh SQLite store on embedded defaults is filled with `--held` messages held as spam in the
last 11 days, each for one of `--recipients` local recipients (chosen at random, fixed seed).
It prints how long `digest.due` takes to find who is due (reading the quarantine), and how long
`digest.send_due` takes to send every digest: each is claimed with its release links, written as
a message, recorded and delivered into the embedded Maildir store.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time

from mailmoat.config import Settings
from mailmoat.digest import due, send_due
from mailmoat.store.db import Store
from mailmoat.store.models import DeliveryRow, MessageRow

FINDINGS = [
    {"symbol": "BAYES_SPAM", "score": 10.0, "group": "bayes", "evidence": "spam probability 0.99"},
    {"symbol": "CONTENT_CLICK_HERE", "score": 1.0, "group": "content", "evidence": "text says 'Click here'"},
]


def fill(store: Store, held: int, recipients: int, now: float) -> None:
    rng = random.Random(1)
    with store.session() as s:
        for i in range(held):
            mid, rcpt = f"M{i:08d}", f"user{rng.randrange(recipients)}@victim-corp.com"
            s.add(MessageRow(
                id=mid, received_at=now - 86400 - rng.random() * 10 * 86400, direction="inbound",
                mail_from="offers@spam.example", rcpt_tos=[rcpt], from_addr="offers@spam.example", from_display="Best Deals",
                subject=f"Limited offer {i}!!!", action="quarantine", score=12.0, status="quarantined", findings=FINDINGS,
            ))
            s.add(DeliveryRow(message_id=mid, recipient=rcpt, mailbox=rcpt, tracking_id=f"{mid}-0000", status="held"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--held", type=int, default=20000)
    ap.add_argument("--recipients", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mm-digest-") as tmp:
        settings = Settings(data_dir=tmp)
        settings.server.domains = ["victim-corp.com"]
        settings.digest.console_url = "https://mailmoat.victim-corp.com"
        store = Store(settings.db_url)
        try:
            now = time.time()
            fill(store, args.held, args.recipients, now)
            t0 = time.perf_counter()
            digests = due(store, settings, now)
            t1 = time.perf_counter()
            sent = asyncio.run(send_due(settings, store, now))
            t2 = time.perf_counter()
        finally:
            store.close()
    items = sum(int(r["items"]) for r in sent)
    print(f"held messages: {args.held}, recipients: {args.recipients}")
    print(f"due:      {len(digests)} digests found in {t1 - t0:.2f} s")
    print(f"send_due: {len(sent)} digests ({items} listed messages) sent in {t2 - t1:.2f} s, "
          f"{(t2 - t1) / max(1, len(sent)) * 1000:.1f} ms per digest")


if __name__ == "__main__":
    main()
