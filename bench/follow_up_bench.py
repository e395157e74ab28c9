"""The rest of a campaign after a person's recall: how long the follow-up takes beside the recall itself, and what it recalls.

    .venv/bin/python bench/follow_up_bench.py ../shared/corpora [--background N] [--copies K]

A fresh data dir (SQLite, embedded Maildir) holds N messages of the corpora's ham, delivered in
the last three days to 50 recipients, and a campaign of K copies sent one per person to K others
(each with its own greeting and link), also delivered. One copy is then recalled by hand (`RecallEngine.run`,
trigger "manual"), which includes the follow-up: the campaign's other copies are judged again and
recalled. Prints the time of the recall with its follow-up, of the same recall with the follow-up
off (`recall.follow_up_hours = 0`) on an identical second data dir, how many messages the
follow-up judged again, and how many copies of the campaign are left in inboxes (0 is the target)
and how many of the ham (N is the target). Then the person's job is restored whole (the recall was
a mistake): the time of that restore, which with the follow-up on also restores the follow-up's
jobs and judges their messages again, and how many copies of the campaign are back (K is the target).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService
from mailmoat.model import Action, Envelope, Verdict
from mailmoat.parse import parse
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector
from mailmoat.store.db import Store

ORG = "victim-corp.com"


def campaign_copy(rcpt: str, n: int) -> bytes:
    m = EmailMessage()
    m["From"] = "Events <events@offsite-signup.example>"
    m["To"] = rcpt
    m["Subject"] = "Team offsite: choose your session"
    m["Message-ID"] = f"<offsite-{n}@offsite-signup.example>"
    m.set_content(f"Hi {rcpt.split('@')[0].title()},\n\nthe sessions for the team offsite are open. Please choose yours this "
                  f"week so that we can plan the rooms and the lunch:\n\nhttps://offsite-signup.example/choose?u={n}x{n * 7}\n\n"
                  "See you there,\nEvents\n")
    return m.as_bytes()


async def _deliver(settings: Settings, store: Store, raws: list[tuple[str, bytes]], start: float) -> list[str]:
    service = DeliveryService(settings, store)
    ids = []
    try:
        for i, (rcpt, raw) in enumerate(raws):
            env = Envelope("sender@outside.example", [rcpt], received_at=start + i, size=len(raw))
            message = parse(raw)
            verdict = Verdict(Action.DELIVER, 0.0, [], [])
            store.record_message(env, message, verdict, store.retain_raw(env, raw, settings.raw_dir))
            await service.deliver(env, raw, verdict, message)
            ids.append(env.id)
    finally:
        service.close()
    return ids


def inbox_count(settings: Settings, rcpts: list[str]) -> int:
    return sum(len(list((settings.mail_dir / r / sub).iterdir())) for r in rcpts for sub in ("new", "cur")
               if (settings.mail_dir / r / sub).is_dir())


async def run_once(root: Path, ham: list[bytes], copies: int, follow_up: bool) -> tuple[float, int, int, float, int]:
    settings = Settings()
    settings.data_dir = str(root)
    settings.server.domains = [ORG]
    settings.recall.follow_up_hours = 72.0 if follow_up else 0.0
    staff = [f"user{i:03d}@{ORG}" for i in range(50)]
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    rng = random.Random(7)
    start = time.time() - 2 * 86400
    await _deliver(settings, store, [(rng.choice(staff), raw) for raw in ham], start)
    victims = [f"v{i:04d}@{ORG}" for i in range(copies)]  # the campaign's recipients get no ham here
    campaign = await _deliver(settings, store, [(v, campaign_copy(v, n)) for n, v in enumerate(victims, 1)], start + 86400)
    engine = RecallEngine(settings, store)
    try:
        job = engine.plan([Selector(mail_id=campaign[0], since="0")], "analyst", "reported", trigger="manual")
        t0 = time.perf_counter()
        await engine.run(job, "analyst")
        took = time.perf_counter() - t0
        left, ham_left = inbox_count(settings, victims), inbox_count(settings, staff)
        t0 = time.perf_counter()
        await engine.restore(job, "analyst")
        restore_took = time.perf_counter() - t0
    finally:
        await engine.close()
        store.close()
    return took, left, ham_left, restore_took, inbox_count(settings, victims)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", type=Path)
    ap.add_argument("--background", type=int, default=2000, help="ham messages delivered beside the campaign")
    ap.add_argument("--copies", type=int, default=40, help="copies of the campaign, one per person")
    args = ap.parse_args()
    files = sorted(f for label in ("ham",) for f in args.corpora.glob(f"*/{label}/*") if f.is_file())
    ham = [f.read_bytes() for f in random.Random(3).sample(files, min(args.background, len(files)))]
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        off = asyncio.run(run_once(Path(a), ham, args.copies, follow_up=False))
        on = asyncio.run(run_once(Path(b), ham, args.copies, follow_up=True))
    print(f"{len(ham)} ham messages and a campaign of {args.copies} copies delivered; one copy recalled by hand")
    print("| follow-up | recall took (s) | campaign copies left in inboxes | ham messages left in inboxes "
          "| restore took (s) | campaign copies back after the restore |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (took, left, ham_left, restore_took, back) in (("off", off), ("on", on)):
        print(f"| {name} | {took:.2f} | {left} | {ham_left} | {restore_took:.2f} | {back} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
