"""Condemned destinations replayed: each corpus's mail arrives in date order through a real store, every spam and phishing message is condemned after it arrives, and LINK_CONDEMNED_DESTINATION is asked of every message.

    .venv/bin/python bench/condemned_replay.py /path/to/corpora [-j N] [--every-hours H] [--young-days D]
                                               [--lookback-days D] [--show N]

Per corpus, every message whose Date header can be read is parsed (in N processes), then replayed
one by one in date order into a fresh SQLite store, with its Date as its arrival: the analyzer
judges it, it is recorded, and when it is spam or phishing it is marked a threat (status
"condemned"), as if an administrator condemned every piece of unwanted mail the moment it came.
The analyzer reads the store again every --every-hours of replayed time (default 1; the gateway
reads it every 30 s). Prints, per corpus and label, how many messages the sign marks, then up to
--show marked ham messages with the evidence: every ham marked is a false positive that this
extreme administrator would have caused. There is no other analyzer and no classifier.
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

from mailmoat.analyzers import condemned_links
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.condemned_links import CondemnedLinkAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Action, Envelope, Message, Verdict
from mailmoat.store.audit import audit
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow


async def _replay(
    corpus: str, items: list[tuple[float, str, str]], messages: list[Message], settings: Settings, every: float
) -> tuple[list[tuple[str, str, str | None]], list[tuple[float, int]]]:
    """(label, path, evidence or None) per message, in arrival order; and for each read of the
    store, how long it took (ms) and how many condemned destinations it found."""
    out: list[tuple[str, str, str | None]] = []
    reads: list[tuple[float, int]] = []
    condemned_links.REFRESH = float("inf")  # the replay says when the store is read again
    with tempfile.TemporaryDirectory(prefix=f"condemned-{corpus}-") as tmp:
        settings.data_dir = tmp
        store = Store(settings.db_url, raw_dir=Path(tmp) / "raw")
        try:
            an = CondemnedLinkAnalyzer(AnalyzerEnv(settings=settings, store=store))
            an._checked = time.monotonic()
            read_at = float("-inf")
            for (when, label, path), msg in zip(items, messages, strict=True):
                if when - read_at >= every:
                    t0 = time.perf_counter()
                    an.refresh(when)
                    reads.append(((time.perf_counter() - t0) * 1000, len(an.condemned)))
                    read_at = when
                env = Envelope(msg.from_.addr, ["user@localhost"], received_at=when, listener="eval")
                found = await an.analyze(AnalysisContext(message=msg, envelope=env, settings=settings))
                out.append((label, path, found[0].evidence if found else None))
                store.record_message(env, msg, Verdict(Action.DELIVER, 0.0, found))
                if label != "ham":
                    with store.session() as s:  # what `mailmoat recall condemn` writes
                        s.get_one(MessageRow, env.id).status = "condemned"
                        audit(s, "bench", "message.condemn", env.id).at = when  # replayed time
                        s.commit()
        finally:
            store.close()
    return out, reads


def main(argv: list[str] | None = None) -> int:
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--every-hours", type=float, default=1.0, help="replayed hours between reads of the store")
    ap.add_argument("--young-days", type=float, default=None, help="condemned_links.young_days (default: the setting's)")
    ap.add_argument("--lookback-days", type=float, default=None, help="condemned_links.lookback_days (default: the setting's)")
    ap.add_argument("--show", type=int, default=10, help="marked ham messages to list per corpus")
    args = ap.parse_args(argv)
    cells = de.discover_or_say(args.corpus_dir)
    settings = Settings()
    if args.young_days is not None:
        settings.condemned_links.young_days = args.young_days
    if args.lookback_days is not None:
        settings.condemned_links.lookback_days = args.lookback_days
    cfg = settings.condemned_links
    print(
        f"every spam and phishing message condemned as it arrives; look-back {cfg.lookback_days:g} days, "
        f"young {cfg.young_days:g} days, store read every {args.every_hours:g} replayed hours\n"
    )
    print("| corpus | label | messages replayed | no readable Date | marked | share |")
    print("|---|---|---:|---:|---:|---:|")
    ham_shown: list[str] = []
    for corpus in sorted({c for c, _ in cells}):
        items, messages, undated = de.in_date_order(cells, corpus, args.jobs)
        t0 = time.perf_counter()
        results, reads = asyncio.run(_replay(corpus, items, messages, settings, args.every_hours * 3600.0))
        replay_s = time.perf_counter() - t0
        for label in sorted({lab for lab, _, _ in results}):
            mine = [r for r in results if r[0] == label]
            marked = [r for r in mine if r[2] is not None]
            print(
                f"| {corpus} | {label} | {len(mine)} | {undated[label]} | {len(marked)} | "
                f"{100.0 * len(marked) / max(len(mine), 1):.2f}% |"
            )
            if label == "ham":
                ham_shown += [f"- {corpus}/{Path(p).name}: {ev}" for _, p, ev in marked[: args.show]]
        ms = sorted(r[0] for r in reads) or [0.0]
        print(
            f"<!-- {corpus}: replayed in {replay_s:.0f} s; {len(reads)} reads of the store, median {statistics.median(ms):.1f} ms, "
            f"slowest {ms[-1]:.1f} ms; at most {max((r[1] for r in reads), default=0)} condemned destinations at once -->"
        )
    if ham_shown:
        print("\nMarked ham:\n" + "\n".join(ham_shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
