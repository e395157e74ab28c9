"""Every compiled regular expression in mailmoat against long runs of one kind of character.

    .venv/bin/python bench/pattern_runs.py [--length N] [--top K]

A pattern that is tried from every position of a long run, and reads to the end of the run at each
try, costs time quadratic in the run: a crafted message then holds a worker for seconds. This
imports every module of the package, collects the module-level compiled patterns, runs `findall`
of each on runs of N characters of about thirty kinds ("aaaa", "a.a.", "www.", digits, blanks,
Chinese ...) and prints the slowest pattern and input pairs. What is linear stays well under a
millisecond at the default length; a quadratic pattern shows up at tens to thousands of them.
Patterns matched only once at a known position (`match(text, pos)`) can look slow here without
being slow in use: check the caller before fixing.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import time

import mailmoat


def patterns() -> dict[str, re.Pattern[str] | re.Pattern[bytes]]:
    out: dict[str, re.Pattern[str] | re.Pattern[bytes]] = {}
    for info in pkgutil.walk_packages(mailmoat.__path__, "mailmoat."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # a module that needs an optional component: skip it
            continue
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                out[f"{info.name}.{name}"] = value
    return out


def inputs(n: int) -> dict[str, str]:
    half, third = n // 2, n // 3
    return {
        "letters": "a" * n, "capitals": "A" * n, "digits": "1" * n, "Chinese": "工" * n,
        "a.": "a." * half, "a-": "a-" * half, "1.": "1." * half, "www.": "www." * (n // 4),
        "a@": "a@" * half, "a=": "a=" * half, "a:": "a:" * half, "a/": "a/" * half, "aA ": "aA " * third,
        "a ": "a " * half, "blanks": " " * n, "tabs": "\t" * n, "lines": "a\n" * half,
        "<a": "<a" * half, "<": "<" * n, "(": "(" * n, "=": "=" * n, "%": "%" * n, "!": "!" * n,
        '"a': '"a' * half, "$1": "$1" * half, "&#1": "&#1" * third,
        "http://aaa": "http://" + "a" * n, "text then blanks": "x" * 100 + " " * n + "x",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--length", type=int, default=8000)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    pats = patterns()
    runs = inputs(args.length)
    timed: list[tuple[float, str, str]] = []
    for name, pat in pats.items():
        for kind, text in runs.items():
            subject: str | bytes = text.encode("utf-8") if isinstance(pat.pattern, bytes) else text
            t0 = time.perf_counter()
            try:
                pat.findall(subject)  # type: ignore[arg-type]
            except Exception:
                continue
            timed.append((time.perf_counter() - t0, name, kind))
    timed.sort(reverse=True)
    print(f"## {len(pats)} patterns × {len(runs)} runs of {args.length} characters: the slowest {args.top}\n")
    print("| ms | pattern | run |")
    print("|---:|---|---|")
    for seconds, name, kind in timed[: args.top]:
        print(f"| {seconds * 1000:.1f} | `{name}` | {kind} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
