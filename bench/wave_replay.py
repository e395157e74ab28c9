"""Waves replayed: each corpus's mail arrives in the order of its Date headers through a real store, and LINK_DOMAIN_WAVE is asked of every message.

    .venv/bin/python bench/wave_replay.py /path/to/corpora [-j N] [--window-hours H] [--min-senders N] [--show N]
    .venv/bin/python bench/wave_replay.py --wave 5000 /path/to/corpora    # also: one large wave's cost

Per corpus, every message (ham, spam and phishing together) whose Date header can be read is
parsed (in N processes), then replayed one by one in date order into a fresh SQLite store: the
wave analyzer judges it against what was recorded before it, with the message's Date as its
arrival, and it is recorded. Prints, per corpus and label, how many messages the sign marks and
how long the analyzer took (median and 99th percentile), then up to --show marked ham messages
with the evidence. There is no other analyzer and no classifier: this measures the sign alone,
on the arrival pattern of the corpora, which is sparser than a real site's (a corpus holds a
sample of one feed's or one person's mail, not an organisation's).

`--wave N` then builds a large wave in a fresh store: 300 ordinary messages over ten days, then N
copies of one lure from N sender domains a few seconds apart, each judged and recorded as it
comes. Prints the analyzer's time for the copies around the 10th, 100th, 1,000th ... and the last:
what each new copy of a big wave costs once thousands are recorded.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_eval as de  # the same corpus discovery and Date reading

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.wave import WaveAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Action, Envelope, Message, Verdict
from mailmoat.parse import parse
from mailmoat.store.db import Store


async def _replay(
    corpus: str, items: list[tuple[float, str, str]], messages: list[Message], settings: Settings
) -> list[tuple[str, str, float, str | None]]:
    """(label, path, analyzer seconds, evidence or None) per message, in arrival order."""
    out: list[tuple[str, str, float, str | None]] = []
    with tempfile.TemporaryDirectory(prefix=f"wave-{corpus}-") as tmp:
        settings.data_dir = tmp
        store = Store(settings.db_url, raw_dir=Path(tmp) / "raw")
        try:
            an = WaveAnalyzer(AnalyzerEnv(settings=settings, store=store))
            for (when, label, path), msg in zip(items, messages, strict=True):
                env = Envelope(msg.from_.addr, ["user@localhost"], received_at=when, listener="eval")
                t0 = time.perf_counter()
                found = await an.analyze(AnalysisContext(message=msg, envelope=env, settings=settings))
                took = time.perf_counter() - t0
                out.append((label, path, took, found[0].evidence if found else None))
                store.record_message(env, msg, Verdict(Action.DELIVER, 0.0, found))
                if an.history is not None:  # replayed time runs faster than the clock its cached counts go by
                    an.history.forget_counts()
        finally:
            store.close()
    return out


def _lure(n: int, domain: str) -> bytes:
    return (
        f"From: Payroll <hr@sender{n}.example>\r\nTo: user@localhost\r\nSubject: Salary adjustment\r\n"
        f"Message-ID: <wave{n}@sender{n}.example>\r\nContent-Type: text/html\r\n\r\n"
        f'<p>Review your salary adjustment: <a href="https://{domain}/r?u={n}">open</a></p>\r\n'
    ).encode()


async def _big_wave(copies: int, settings: Settings) -> list[tuple[int, float, bool]]:
    """(copy number, analyzer ms, marked) for copies near each power of ten and the last."""
    marks = {10**k for k in range(1, 8) if 10**k <= copies} | {copies}
    out: list[tuple[int, float, bool]] = []
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="wave-big-") as tmp:
        settings.data_dir = tmp
        store = Store(settings.db_url, raw_dir=Path(tmp) / "raw")
        try:
            an = WaveAnalyzer(AnalyzerEnv(settings=settings, store=store))
            for i in range(300):
                raw = (
                    f"From: n{i % 9}@news{i % 9}.example\r\nSubject: News {i}\r\nMessage-ID: <n{i}@x>\r\n\r\n"
                    f"Today: https://www.site{i % 40}.example/a{i}\r\n"
                ).encode()
                msg = parse(raw)
                env = Envelope(msg.from_.addr, ["user@localhost"], received_at=now - 10 * 86400 + i * 2000, listener="eval")
                store.record_message(env, msg, Verdict(Action.DELIVER, 0.0))
            start = now - copies * 2.0
            for n in range(1, copies + 1):
                msg = parse(_lure(n, "salary-review-portal.example"))
                env = Envelope(msg.from_.addr, ["user@localhost"], received_at=start + n * 2.0, listener="eval")
                t0 = time.perf_counter()
                found = await an.analyze(AnalysisContext(message=msg, envelope=env, settings=settings))
                took = (time.perf_counter() - t0) * 1000
                if n in marks:
                    out.append((n, took, bool(found)))
                store.record_message(env, msg, Verdict(Action.DELIVER, 0.0, found))
        finally:
            store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--window-hours", type=float, default=None, help="waves.window_hours (default: the setting's)")
    ap.add_argument("--min-senders", type=int, default=None, help="waves.min_senders (default: the setting's)")
    ap.add_argument("--show", type=int, default=10, help="marked ham messages to list per corpus")
    ap.add_argument("--wave", type=int, default=0, help="also time one synthetic wave of this many copies")
    args = ap.parse_args(argv)
    cells = de.discover_or_say(args.corpus_dir)
    settings = Settings()
    if args.window_hours is not None:
        settings.waves.window_hours = args.window_hours
    if args.min_senders is not None:
        settings.waves.min_senders = args.min_senders
    print(
        f"window {settings.waves.window_hours:g} h, at least {settings.waves.min_senders} unrelated senders; "
        f"{args.jobs} parsing processes\n"
    )
    print("| corpus | label | messages replayed | no readable Date | marked | share | analyzer median | p99 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    ham_shown: list[str] = []
    for corpus in sorted({c for c, _ in cells}):
        t0 = time.perf_counter()
        items, messages, undated = de.in_date_order(cells, corpus, args.jobs)
        parsed_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = asyncio.run(_replay(corpus, items, messages, settings))
        replay_s = time.perf_counter() - t0
        for label in sorted({lab for lab, _, _, _ in results}):
            mine = [r for r in results if r[0] == label]
            marked = [r for r in mine if r[3] is not None]
            times = sorted(r[2] for r in mine)
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
            print(
                f"| {corpus} | {label} | {len(mine)} | {undated[label]} | {len(marked)} | "
                f"{100.0 * len(marked) / max(len(mine), 1):.2f}% | {statistics.median(times) * 1000:.2f} ms | {p99:.2f} ms |"
            )
            if label == "ham":
                ham_shown += [f"- {corpus}/{Path(p).name}: {ev}" for _, p, _, ev in marked[: args.show]]
        print(f"<!-- {corpus}: parsed in {parsed_s:.0f} s, replayed in {replay_s:.0f} s -->")
    if ham_shown:
        print("\nMarked ham:\n" + "\n".join(ham_shown))
    if args.wave > 0:
        print(f"\nOne wave of {args.wave} copies from as many sender domains (fresh SQLite store):\n")
        print("| copy | analyzer ms | marked |\n|---:|---:|---|")
        for n, ms, marked in asyncio.run(_big_wave(args.wave, settings)):
            print(f"| {n} | {ms:.2f} | {'yes' if marked else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
