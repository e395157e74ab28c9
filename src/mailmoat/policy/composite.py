"""Composite symbol expressions: `A && (B || !C)` over symbol names, parsed once into a small tree."""

from __future__ import annotations

import re
from collections.abc import Callable, Set

_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([A-Za-z_][A-Za-z0-9_]*))")

Predicate = Callable[[Set[str]], bool]


class CompositeSyntaxError(ValueError):
    """A composite expression that cannot be parsed (the message says where)."""


def _tokens(expr: str) -> list[str]:
    out: list[str] = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise CompositeSyntaxError(f"unexpected {expr[pos:].strip()[:20]!r} at offset {pos} in {expr!r}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


def compile_composite(expr: str) -> tuple[Predicate, frozenset[str]]:
    """Predicate over the set of present symbols, and the symbol names the expression uses.

    Grammar: or := and ('||' and)* ; and := unary ('&&' unary)* ; unary := '!' unary | '(' or ')' | NAME.
    """
    toks = _tokens(expr)
    names: set[str] = set()
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise CompositeSyntaxError(f"unexpected end of {expr!r}")
        pos += 1
        return toks[pos - 1]

    def p_or() -> Predicate:
        terms = [p_and()]
        while peek() == "||":
            take()
            terms.append(p_and())
        if len(terms) == 1:
            return terms[0]
        return lambda s: any(t(s) for t in terms)

    def p_and() -> Predicate:
        terms = [p_unary()]
        while peek() == "&&":
            take()
            terms.append(p_unary())
        if len(terms) == 1:
            return terms[0]
        return lambda s: all(t(s) for t in terms)

    def p_unary() -> Predicate:
        tok = take()
        if tok == "!":
            inner = p_unary()
            return lambda s: not inner(s)
        if tok == "(":
            inner = p_or()
            if take() != ")":
                raise CompositeSyntaxError(f"missing ')' in {expr!r}")
            return inner
        if tok in ("&&", "||", ")"):
            raise CompositeSyntaxError(f"unexpected {tok!r} in {expr!r}")
        names.add(tok)
        return lambda s: tok in s

    if not toks:
        raise CompositeSyntaxError("empty composite expression")
    pred = p_or()
    if pos != len(toks):
        raise CompositeSyntaxError(f"unexpected {toks[pos]!r} in {expr!r}")
    return pred, frozenset(names)
