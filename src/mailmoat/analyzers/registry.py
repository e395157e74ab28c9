"""Finds analyzers (every module of this package, plus the `mailmoat.analyzers` entry-point group)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from importlib.metadata import entry_points

import mailmoat.analyzers as pkg
from mailmoat.analyzers.base import AnalyzerEnv, BaseAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Symbol

_SKIP = {"base", "registry", "runner"}


class RegistryError(RuntimeError):
    """Analyzers that cannot be loaded together (e.g. two declare the same symbol)."""


def analyzer_classes() -> list[type[BaseAnalyzer]]:
    """Every concrete analyzer class, in a stable order (module name, then class name)."""
    found: dict[str, type[BaseAnalyzer]] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseAnalyzer) and obj is not BaseAnalyzer and obj.__module__ == module.__name__ and obj.name:
                found[f"{module.__name__}.{obj.__name__}"] = obj
    for ep in entry_points(group="mailmoat.analyzers"):
        obj = ep.load()
        if not (inspect.isclass(obj) and issubclass(obj, BaseAnalyzer)):
            raise RegistryError(f"entry point {ep.name!r} is not a BaseAnalyzer subclass")
        found[f"{obj.__module__}.{obj.__name__}"] = obj
    return [found[k] for k in sorted(found)]


def declared_symbols(cls: type[BaseAnalyzer], settings: Settings | None = None) -> tuple[Symbol, ...]:
    """An analyzer's symbols: its class attribute plus, for data-driven analyzers (rules), a
    classmethod `dynamic_symbols(settings)` declaring one symbol per loaded rule."""
    dynamic = getattr(cls, "dynamic_symbols", None)
    return tuple(cls.symbols) + (tuple(dynamic(settings)) if callable(dynamic) else ())


def all_symbols(
    classes: list[type[BaseAnalyzer]], extra: list[Symbol] | None = None, settings: Settings | None = None
) -> dict[str, Symbol]:
    """Symbol table across analyzers; a name declared twice is an error that stops start-up."""
    table: dict[str, Symbol] = {}
    owner: dict[str, str] = {}
    for cls in classes:
        for sym in declared_symbols(cls, settings):
            if sym.name in table:
                raise RegistryError(f"symbol {sym.name} declared by both {owner[sym.name]} and {cls.name}")
            table[sym.name] = sym
            owner[sym.name] = cls.name
    for sym in extra or []:
        if sym.name in table:
            raise RegistryError(f"symbol {sym.name} declared twice")
        table[sym.name] = sym
    return table


def build(env: AnalyzerEnv) -> list[BaseAnalyzer]:
    """Instantiate every enabled analyzer (checking the symbol table first)."""
    classes = analyzer_classes()
    all_symbols(classes, settings=env.settings)
    analyzers = [cls(env) for cls in classes]
    return [a for a in analyzers if a.enabled()]
