"""Push every file of a corpus through the whole gateway over SMTP: accepted, processed, exceptions.

    .venv/bin/python bench/gateway_corpus.py /work/shared/corpora/mime_fixtures [--workers 0]

Starts `mailmoat serve`'s Gateway in this process (a temp data dir, free port), sends each file as
one message (bytes as they are: line endings normalised to CRLF, dot-stuffed by smtplib), waits
until the spool is empty and reports: SMTP replies other than 250, messages not recorded, the
recorded actions, and every ERROR logged by mailmoat (an exception that escaped an analyzer is
logged by the runner and becomes ANALYZER_FAILED; one that escaped the pipeline is logged and the
message stays in the spool).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import re
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path

from mailmoat.cli.serve import Gateway
from mailmoat.config import Settings
from mailmoat.store.db import Store


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("mailmoat"):
            self.records.append(f"{record.name}: {record.getMessage()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file())
    if args.limit:
        files = files[: args.limit]
    errors = _Errors()
    logging.getLogger().addHandler(errors)

    settings = Settings()
    settings.data_dir = tempfile.mkdtemp(prefix="mailmoat-corpus-")
    settings.server.listen = "127.0.0.1:0"
    settings.server.workers = args.workers
    settings.server.max_line_length = 1_000_000  # the point here is the pipeline, not line limits
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    gw = Gateway(settings)
    asyncio.run_coroutine_threadsafe(gw.start(), loop).result(120)
    host, port = gw.address()

    refused: list[str] = []
    ids: dict[str, str] = {}
    t0 = time.perf_counter()
    with smtplib.SMTP(host, port, timeout=120) as c:
        c.ehlo("corpus.example.org")
        for f in files:
            raw = re.sub(rb"\r?\n", b"\r\n", f.read_bytes())
            try:
                c.mail("corpus@example.org")
                c.rcpt("user@localhost")
                code, reply = c.data(raw)
            except smtplib.SMTPResponseException as exc:
                code, reply = exc.smtp_code, exc.smtp_error
                c.rset()
            if code == 250:
                ids[str(f)] = reply.decode().rsplit(" ", 1)[1]
            else:
                refused.append(f"{f}: {code} {reply.decode(errors='replace')}")
    assert gw.spool is not None
    while gw.spool.count():
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    asyncio.run_coroutine_threadsafe(gw.stop(), loop).result(120)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)

    store = Store(settings.db_url, create=False)
    actions: collections.Counter[str] = collections.Counter()
    missing = []
    for name, qid in ids.items():
        row = store.get_message(qid)
        if row is None:
            missing.append(name)
        else:
            actions[row.action] += 1
    store.close()
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    print(f"{len(files)} files in {elapsed:.1f}s: {len(ids)} accepted, {len(refused)} refused in SMTP, "
          f"{len(missing)} accepted but not recorded, {len(errors.records)} errors logged")
    print("actions:", dict(actions))
    for line in refused[:20]:
        print("  refused:", line)
    for line in missing[:20]:
        print("  not recorded:", line)
    for line in errors.records[:20]:
        print("  error:", line)
    return 0 if not missing and not errors.records else 1


if __name__ == "__main__":
    sys.exit(main())
