"""CEL engines for rules: `cel` (Rust bindings) against `cel-python` on a built-in rule.

usage: .venv/bin/pip install cel-python && .venv/bin/python bench/rules_cel_compare.py

Compiles the expression of rules/builtin/bec_bank_details_replyto.yml with both engines and times
building the activation from a realistic message (3 KB body, a Reply-To, 12 links) plus evaluating
it, best of several rounds so that a busy machine does not distort the result. mailmoat uses
`cel`; see docs/rules.md.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cel

from mailmoat.model import Address, Envelope, Message, Url
from mailmoat.rules import activation, load_rule
from mailmoat.rules.functions import STATIC_FUNCTIONS

RULE = Path(__file__).resolve().parent.parent / "src/mailmoat/rules/builtin/bec_bank_details_replyto.yml"


def best(fn: Callable[[], object], n: int, rounds: int = 7) -> float:
    """Seconds per call, the best of `rounds` rounds of `n` calls."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t) / n)
    return min(out)


def main() -> None:
    try:
        import celpy
    except ImportError:
        sys.exit("cel-python is not installed: .venv/bin/pip install cel-python")
    rule = load_rule(RULE)
    expr = rule.expression
    body = "Hello, please note our new bank account for the outstanding invoice; reply to confirm. " * 30
    m = Message(
        subject="Updated bank details",
        from_=Address("AP", "ap@supplier.example"),
        reply_to=[Address("", "ap.pay@gmail.com")],
        text=body,
        urls=[
            Url(
                f"https://h{i}.example/p",
                scheme="https",
                host=f"h{i}.example",
                registrable_domain=f"h{i}.example",
                source="href",
            )
            for i in range(12)
        ],
    )
    e = Envelope(mail_from="a@x.example", rcpt_tos=["u@example.org"])
    fields = rule.fields  # the engine builds only what the rule uses

    prog = cel.compile(expr)
    c_compile = best(lambda: cel.compile(expr), 50)
    c_all = best(
        lambda: prog.execute(
            cel.Context(variables=activation.build(m, e, [], fields), functions=STATIC_FUNCTIONS)
        ),
        500,
    )
    ctx = cel.Context(variables=activation.build(m, e, [], fields), functions=STATIC_FUNCTIONS)
    c_eval = best(lambda: prog.execute(ctx), 2000)

    def to_py(v: Any) -> Any:
        return [to_py(x) for x in v] if isinstance(v, celpy.celtypes.ListType) else str(v)

    cp_funcs = {
        "contains_any": lambda text, items: celpy.celtypes.BoolType(
            STATIC_FUNCTIONS["contains_any"](str(text), to_py(items))
        )
    }
    env = celpy.Environment()
    cp_compile = best(lambda: env.program(env.compile(expr), functions=cp_funcs), 3, 3)
    cprog = env.program(env.compile(expr), functions=cp_funcs)
    cp_all = best(lambda: cprog.evaluate(dict(celpy.json_to_cel(activation.build(m, e, [], fields)))), 30, 5)
    act = dict(celpy.json_to_cel(activation.build(m, e, [], fields)))
    cp_eval = best(lambda: cprog.evaluate(act), 30, 5)
    assert prog.execute(ctx) is True and bool(cprog.evaluate(act)) is True
    print(f"rule {rule.id}, fields {sorted(fields)}")
    print(
        f"cel (Rust) : compile {c_compile * 1e3:.2f} ms | activation+evaluate {c_all * 1e6:.0f} us | evaluate {c_eval * 1e6:.1f} us"
    )
    print(
        f"cel-python : compile {cp_compile * 1e3:.2f} ms | activation+evaluate {cp_all * 1e6:.0f} us | evaluate {cp_eval * 1e6:.0f} us"
    )
    print(f"ratio: {cp_all / c_all:.0f}x per message, {cp_eval / c_eval:.0f}x evaluating")


if __name__ == "__main__":
    main()
