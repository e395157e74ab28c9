"""Put the warning banner into every message of some corpora and check what came out: the banner
where it belongs, every other part byte for byte the same, the text it was put into kept whole.

    .venv/bin/python bench/banner_check.py ../shared/corpora [--limit N]

Prints, per corpus: messages, banners added, messages left as they were (no body text, signed or
encrypted, text that cannot be read back exactly), and any message whose result does not check
out (none is the target); then how long a few messages made to be slow take.
"""

from __future__ import annotations

import argparse
import email
import sys
import time
from collections import Counter
from email import policy
from email.message import Message
from pathlib import Path

from mailmoat.deliver.banner import add_banner

LINES = ["Caution: this message looks suspicious.", "Do not scan its QR codes."]


def _leaves(m: Message) -> list[Message]:
    return [p for p in m.walk() if not p.is_multipart()]


def _text(p: Message) -> str:
    data = p.get_payload(decode=True)
    assert isinstance(data, bytes)
    try:
        return data.decode(p.get_content_charset() or "us-ascii", "replace")
    except LookupError:
        return data.decode("latin-1")


def check(raw: bytes) -> str:
    """"added", "unchanged" or what went wrong."""
    out = add_banner(raw, "warning", LINES)
    if out == raw:
        return "unchanged"
    before = email.message_from_bytes(raw, policy=policy.compat32)
    after = email.message_from_bytes(out, policy=policy.compat32)
    old, new = _leaves(before), _leaves(after)
    if [p.get_content_type() for p in old] != [p.get_content_type() for p in new]:
        return "structure changed"
    changed = 0
    for a, b in zip(old, new, strict=True):
        if a.get_payload(decode=True) == b.get_payload(decode=True):
            continue
        if a.get_content_type() not in ("text/plain", "text/html"):
            return f"a {a.get_content_type()} part changed"
        # Line breaks may come back as CRLF or LF (quoted-printable writes them in the message's own);
        # that is the same text.
        ta, tb = (_text(p).replace("\r\n", "\n") for p in (a, b))
        if LINES[0] not in tb:
            return "banner missing from a changed part"
        if a.get_content_type() == "text/plain" and not tb.endswith(ta):
            return "plain text not kept"
        if a.get_content_type() == "text/html" and len(tb) <= len(ta):
            return "html text shorter"
        changed += 1
    return "added" if changed else "changed, no part differs"


def crafted() -> None:
    """Messages made to be slow to put a banner into, each timed."""
    cases = {
        'HTML of 200,000 "<body" with no ">" (1 MB)': b"Content-Type: text/html; charset=utf-8\n\n" + b"<body" * 200_000,
        "an alternative of 200,000 image parts (5.6 MB)": b"Content-Type: multipart/alternative; boundary=a\n\n"
        + b"--a\nContent-Type: image/png\n\nx\n" * 200_000 + b"--a--\n",
        "200,000 empty parts of a mixed (0.8 MB)": b"Content-Type: multipart/mixed; boundary=a\n\n" + b"\n--a" * 200_000 + b"x",
    }
    for name, raw in cases.items():
        t0 = time.perf_counter()
        add_banner(raw, "warning", LINES)
        print(f"crafted: {name}: {(time.perf_counter() - t0) * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpora", type=Path)
    ap.add_argument("--limit", type=int, default=0, help="at most this many messages per corpus")
    args = ap.parse_args()
    bad: list[tuple[str, str]] = []
    for corpus in sorted(p for p in args.corpora.iterdir() if p.is_dir()):
        files = sorted(f for f in corpus.rglob("*")
                       if f.is_file() and f.suffix not in (".md", ".txt", ".json") and f.name not in ("LICENSE", "README"))
        if args.limit:
            files = files[: args.limit]
        counts: Counter[str] = Counter()
        t0 = time.perf_counter()
        for f in files:
            try:
                result = check(f.read_bytes())
            except Exception as exc:  # the check itself failed on this message: report it
                result = f"check failed: {type(exc).__name__}"
            counts[result] += 1
            if result not in ("added", "unchanged"):
                bad.append((str(f), result))
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(files))
        print(f"{corpus.name}: {len(files)} messages, {counts['added']} banners added, {counts['unchanged']} left as they were, "
              f"{len(files) - counts['added'] - counts['unchanged']} not checking out ({ms:.2f} ms per message)")
        for what, n in counts.most_common():
            if what not in ("added", "unchanged"):
                print(f"  {n} × {what}")
    crafted()
    for path, what in bad[:20]:
        print(f"  {what}: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
