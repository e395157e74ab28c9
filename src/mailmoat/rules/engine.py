"""Rules as data: load one YAML rule per file, compile its CEL expression once, evaluate over a message."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cel
import yaml

from mailmoat.config import RulesSettings, Settings
from mailmoat.model import Envelope, Finding, Message, Symbol
from mailmoat.rules import activation
from mailmoat.rules.functions import MESSAGE_FUNCTION_NAMES, STATIC_FUNCTIONS, message_functions, words

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).parent / "builtin"
SEVERITIES = ("info", "low", "medium", "high", "critical")
REQUIRED_FIELDS = ("id", "name", "description", "severity", "symbol", "score", "expression", "samples")
OPTIONAL_FIELDS = ("group", "tags", "evidence")
DEFAULT_GROUP = "rules"
FILE_RE = re.compile(r"^[a-z0-9]+_[a-z0-9_]+$")
SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
RELOAD_INTERVAL = 1.0  # seconds between checks of the site directory

# What CEL itself provides (functions, and type names that parse as identifiers).
_CEL_FUNCTIONS = frozenset(
    words(
        """contains startsWith endsWith matches size int uint double string bytes bool timestamp duration dyn type
    getFullYear getMonth getDate getDayOfMonth getDayOfWeek getDayOfYear getHours getMinutes getSeconds
    getMilliseconds"""
    )
)
_CEL_IDENTS = frozenset(words("int uint double string bytes bool list map null_type type"))
_MACRO_VAR = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


class RuleError(ValueError):
    """A rule file that cannot be used; the message names the file and the problem."""


@dataclass
class Rule:
    id: str
    name: str
    description: str
    severity: str
    symbol: str
    score: float
    group: str
    tags: list[str]
    expression: str
    evidence: str
    samples_hit: list[str]
    samples_miss: list[str]
    path: Path
    program: Any = field(repr=False)
    evidence_program: Any = field(default=None, repr=False)
    fields: frozenset[str] = frozenset()
    uses_message_functions: bool = False

    def as_symbol(self) -> Symbol:
        return Symbol(self.symbol, self.score, self.group, f"{self.name} (rule {self.id})")

    @property
    def samples_dir(self) -> Path:
        return self.path.parent / "samples"


def _str(doc: dict[str, Any], key: str, where: str) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not v.strip():
        raise RuleError(f"{where}: {key!r} must be a non-empty string")
    return v.strip()


def _str_list(v: Any, where: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise RuleError(f"{where}: expected a list of strings")
    return list(v)


def _compile(expr: str, where: str) -> tuple[Any, frozenset[str], bool]:
    """Compile a CEL expression and check it only uses known fields and functions."""
    try:
        program = cel.compile(expr)
    except (ValueError, RuntimeError) as exc:
        raise RuleError(f"{where}: expression does not compile: {exc}") from exc
    bound = set(_MACRO_VAR.findall(expr))
    used = set(program.variables()) - bound - _CEL_IDENTS
    unknown = sorted(used - set(activation.FIELDS))
    if unknown:
        raise RuleError(
            f"{where}: unknown field(s) {', '.join(unknown)} (see `mailmoat rules list --fields`)"
        )
    funcs = {f for f in program.functions() if f[:1] not in "_@!"}
    bad = sorted(funcs - _CEL_FUNCTIONS - set(STATIC_FUNCTIONS) - MESSAGE_FUNCTION_NAMES)
    if bad:
        raise RuleError(f"{where}: unknown function(s) {', '.join(bad)}")
    return program, frozenset(used), bool(funcs & MESSAGE_FUNCTION_NAMES)


# libyaml's safe loader reads the same documents ten times faster than the pure-Python one; every
# scanner reads every rule file, so it was two thirds of the time a scanner took to start.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """A YAML document read safely (libyaml's safe loader when PyYAML has it): rule files and the
    lexicons' rules alike. Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_YAML_LOADER)


def plain_sample_name(name: str) -> bool:
    """Whether a sample name is a file name in the rule's samples/ folder, with no folder in it."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def parse_rule(text: str, path: Path) -> Rule:
    """One rule from its YAML text; every problem is a RuleError naming the file."""
    where = str(path)
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RuleError(f"{where}: a rule file holds one mapping (id, name, expression, ...)")
    unknown = sorted(str(k) for k in doc if k not in REQUIRED_FIELDS and k not in OPTIONAL_FIELDS)
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [k for k in REQUIRED_FIELDS if k not in doc]
    if missing:
        raise RuleError(f"{where}: missing field(s) {', '.join(missing)}")
    rid = _str(doc, "id", where)
    if not FILE_RE.match(path.stem):
        raise RuleError(f"{where}: file name must be <category>_<what>.yml in lower case")
    if rid != path.stem:
        raise RuleError(f"{where}: id {rid!r} must equal the file name {path.stem!r}")
    severity = _str(doc, "severity", where)
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    symbol = _str(doc, "symbol", where)
    if not SYMBOL_RE.match(symbol):
        raise RuleError(f"{where}: symbol {symbol!r} must be UPPER_SNAKE_CASE")
    score = doc.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise RuleError(f"{where}: score must be a number")
    if not math.isfinite(score):  # YAML's .nan scores 0 and lists as null; .inf outweighs every other sign
        raise RuleError(f"{where}: score must be a finite number, not {score!r}")
    group = doc.get("group", DEFAULT_GROUP)
    if not isinstance(group, str) or not group:
        raise RuleError(f"{where}: group must be a non-empty string")
    tags = _str_list(doc.get("tags"), f"{where}: tags")
    samples = doc.get("samples")
    if not isinstance(samples, dict):
        raise RuleError(f"{where}: samples must be a mapping with hit and miss lists")
    bad_keys = sorted(str(k) for k in samples if k not in ("hit", "miss"))
    if bad_keys:
        raise RuleError(f"{where}: unknown field(s) under samples: {', '.join(bad_keys)}")
    hit = _str_list(samples.get("hit"), f"{where}: samples.hit")
    miss = _str_list(samples.get("miss"), f"{where}: samples.miss")
    for name in (*hit, *miss):
        if not plain_sample_name(name):
            # With a folder in it, running the samples would read a file outside samples/.
            raise RuleError(f"{where}: sample {name!r} must be a plain file name in samples/")
    expression = _str(doc, "expression", where)
    program, fields, uses_mf = _compile(expression, f"{where}: expression")
    evidence = doc.get("evidence", "")
    ev_program = None
    if evidence:
        if not isinstance(evidence, str):
            raise RuleError(f"{where}: evidence must be a CEL expression (string)")
        ev_program, ev_fields, ev_mf = _compile(evidence, f"{where}: evidence")
        fields |= ev_fields
        uses_mf = uses_mf or ev_mf
    return Rule(
        id=rid,
        name=_str(doc, "name", where),
        description=_str(doc, "description", where),
        severity=severity,
        symbol=symbol,
        score=float(score),
        group=group,
        tags=tags,
        expression=expression,
        evidence=evidence or "",
        samples_hit=hit,
        samples_miss=miss,
        path=path,
        program=program,
        evidence_program=ev_program,
        fields=fields,
        uses_message_functions=uses_mf,
    )


def load_rule(path: Path) -> Rule:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read: {exc}") from exc
    return parse_rule(text, path)


def rule_files(directory: Path) -> list[Path]:
    """Rule files directly in a directory (samples/ beside them is not searched)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def load_dir(directory: Path) -> tuple[list[Rule], list[RuleError]]:
    """Every rule of a directory, and the errors of the files that could not be loaded."""
    rules: list[Rule] = []
    errors: list[RuleError] = []
    for p in rule_files(directory):
        try:
            rules.append(load_rule(p))
        except RuleError as exc:
            errors.append(exc)
    return rules, errors


def duplicates(rules: Iterable[Rule], reserved: Iterable[str] = ()) -> tuple[list[Rule], list[RuleError]]:
    """Keep the first rule per id and per symbol; later ones (and symbols owned by analyzers) are errors."""
    taken_sym = set(reserved)
    reserved_set = set(reserved)
    ids: dict[str, Rule] = {}
    syms: dict[str, Rule] = {}
    kept: list[Rule] = []
    errors: list[RuleError] = []
    for r in rules:
        if r.id in ids:
            errors.append(RuleError(f"{r.path}: rule id {r.id} already defined in {ids[r.id].path}"))
        elif r.symbol in syms:
            errors.append(RuleError(f"{r.path}: symbol {r.symbol} already used by rule {syms[r.symbol].id}"))
        elif r.symbol in taken_sym:
            owner = "an analyzer" if r.symbol in reserved_set else "another rule"
            errors.append(RuleError(f"{r.path}: symbol {r.symbol} is already declared by {owner}"))
        else:
            ids[r.id] = r
            syms[r.symbol] = r
            kept.append(r)
    return kept, errors


@dataclass
class Hit:
    rule: Rule
    evidence: str

    def finding(self) -> Finding:
        """The finding a hit raises: what later rules read and what the rules analyzer reports."""
        r = self.rule
        return Finding(
            symbol=r.symbol,
            score=r.score,
            evidence=self.evidence,
            source=f"rule:{r.id}",
            group=r.group,
            data={"rule": r.id, "severity": r.severity, "tags": list(r.tags)},
        )


def reads(rule: Rule, other: Rule) -> bool:
    """Whether `rule` names `other`'s symbol (as a quoted string) in its expression or evidence."""
    if other is rule:
        return False
    text = rule.expression + "\n" + rule.evidence
    return f'"{other.symbol}"' in text or f"'{other.symbol}'" in text


def layers(rules: list[Rule]) -> list[list[Rule]]:
    """The rules in the order their reading of each other asks for: a rule that names another
    rule's symbol comes in a later layer than that rule, and sees its finding. Rules that read
    each other in a circle cannot all come after one another: they share one layer, where none
    sees the others (as every rule did before rules could read rules)."""
    deps = {id(r): [o for o in rules if reads(r, o)] for r in rules}
    placed: set[int] = set()
    out: list[list[Rule]] = []
    left = list(rules)
    while left:
        ready = [r for r in left if all(id(d) in placed for d in deps[id(r)])] or left
        out.append(ready)
        placed.update(id(r) for r in ready)
        left = [r for r in left if id(r) not in placed]
    return out


def with_dependencies(rule: Rule, rules: list[Rule]) -> list[Rule]:
    """`rule` and every rule it reads, directly or through another: what its samples need to run."""
    out, todo = [rule], [rule]
    while todo:
        r = todo.pop()
        for other in rules:
            if reads(r, other) and all(other is not x for x in out):
                out.append(other)
                todo.append(other)
    return out


_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrubbed(value: Any) -> Any:
    """`value` with every lone surrogate (an undecodable byte kept by surrogateescape) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    return value


def _context(variables: dict[str, Any], functions: dict[str, Callable[..., Any]]) -> Any:
    """A CEL context over the variables. CEL strings are UTF-8, and a string holding bytes that
    were not (an SMTP address read with surrogateescape) fails the whole conversion: then the
    variables are converted again with those characters replaced, rather than every rule failing."""
    try:
        return cel.Context(variables=variables, functions=functions)
    except ValueError as exc:
        log.warning("rules: converting again with undecodable characters replaced (%s)", exc)
        return cel.Context(variables=_scrubbed(variables), functions=functions)


class RuleSet:
    """Compiled rules evaluated together: one activation per message holding only the fields they use.

    A rule may read another rule's symbol in `findings` ("UNSOLICITED_STATEMENT_IN_BODY" in
    findings): the rules run in layers (`layers`), and a later layer's activation carries the
    findings of the rules that hit before it.
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.fields: frozenset[str] = frozenset().union(*(r.fields for r in rules)) if rules else frozenset()
        self.uses_message_functions = any(r.uses_message_functions for r in rules)
        self.layers = layers(rules)

    def _functions(self, message: Message) -> dict[str, Callable[..., Any]]:
        functions: dict[str, Callable[..., Any]] = dict(STATIC_FUNCTIONS)
        if self.uses_message_functions:
            functions.update(message_functions(message))
        return functions

    def evaluate(
        self, message: Message, envelope: Envelope, prior: list[Finding]
    ) -> tuple[list[Hit], list[tuple[Rule, str]]]:
        """Rules that hit (with evidence), and rules whose evaluation failed (with the error)."""
        hits: list[Hit] = []
        failed: list[tuple[Rule, str]] = []
        if not self.rules:
            return hits, failed
        functions = self._functions(message)
        variables = activation.build(message, envelope, prior, self.fields)
        ctx = _context(variables, functions)
        seen = list(prior)
        built = len(seen)  # the findings the activation was built with
        last = len(self.layers) - 1
        for n, layer in enumerate(self.layers):
            if len(seen) > built:
                # Only the fields read from the findings change; the rest is built once.
                variables.update(activation.build(message, envelope, seen, self.fields & activation.FROM_FINDINGS))
                ctx = _context(variables, functions)
                built = len(seen)
            for rule in layer:
                try:
                    result = rule.program.execute(ctx)
                except Exception as exc:  # CEL raises several types (KeyError, RuntimeError, TypeError ...)
                    failed.append((rule, f"{type(exc).__name__}: {exc}"))
                    continue
                if result is True:
                    hit = Hit(rule, self._evidence(rule, ctx))
                    hits.append(hit)
                    if n < last:  # only a later layer reads it; the analyzer builds the reported one
                        seen.append(hit.finding())
                elif result is not False:
                    failed.append((rule, f"expression returned {type(result).__name__}, not bool"))
        return hits, failed

    @staticmethod
    def _evidence(rule: Rule, ctx: Any) -> str:
        if rule.evidence_program is None:
            return rule.name
        try:
            value = rule.evidence_program.execute(ctx)
        except Exception:
            return rule.name
        return str(value) if value not in (None, "") else rule.name


DISABLED_FILE = "rules-disabled.txt"  # rule ids switched off from the console, one a line
DEFAULT_SITE_DIR = "rules"  # under the data dir when rules.site_dir is not set


def site_dir_for(settings: Settings) -> Path:
    """The site rule directory: `rules.site_dir`, else `<data_dir>/rules` (where the console installs rules)."""
    return Path(settings.rules.site_dir) if settings.rules.site_dir else settings.data_path / DEFAULT_SITE_DIR


def disabled_ids(rules: RulesSettings, data_dir: Path | None) -> set[str]:
    """`rules.disabled` plus the ids listed in `<data_dir>/rules-disabled.txt` (written by the console)."""
    out = set(rules.disabled)
    if data_dir is None:
        return out
    try:
        text = (data_dir / DISABLED_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    out.update(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return out


class RuleLibrary:
    """Built-in rules plus the site directory, minus disabled ids; site files are re-read when they change.

    With `data_dir`, the site directory defaults to `<data_dir>/rules` when `rules.site_dir` is not set
    (a missing default directory is not an error) and `<data_dir>/rules-disabled.txt` adds disabled ids.
    """

    def __init__(
        self,
        settings: RulesSettings,
        reserved: Iterable[str] = (),
        builtin_dir: Path = BUILTIN_DIR,
        clock: Callable[[], float] = time.monotonic,
        data_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.reserved = frozenset(reserved)
        self.builtin_dir = builtin_dir
        self.data_dir = data_dir
        if settings.site_dir:
            self.site_dir: Path | None = Path(settings.site_dir)
        else:
            self.site_dir = data_dir / DEFAULT_SITE_DIR if data_dir is not None else None
        self._site_optional = not settings.site_dir
        self._missing_site: RuleError | None = None
        self._clock = clock
        self._last_check = clock()
        self.errors: list[RuleError] = []
        builtin, errs = load_dir(builtin_dir)
        self._builtin = builtin
        self._builtin_errors = errs
        self._site: dict[Path, Rule] = {}
        self._site_errors: list[RuleError] = []
        self._signature = self._site_signature()
        self._load_site()
        self.ruleset = self._assemble()

    def _site_signature(self) -> tuple[tuple[str, int, int], ...]:
        paths = rule_files(self.site_dir) if self.site_dir is not None else []
        if self.data_dir is not None:
            paths.append(self.data_dir / DISABLED_FILE)
        sig = []
        for p in paths:
            try:
                st = p.stat()
            except OSError:
                continue
            sig.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(sig)

    def _load_site(self) -> list[RuleError]:
        errors: list[RuleError] = []
        self._site_errors = errors
        if self.site_dir is None:
            return errors
        if not self.site_dir.is_dir():
            if not self._site_optional:
                self._missing_site = RuleError(f"{self.site_dir}: rules.site_dir is not a directory")
                errors.append(self._missing_site)
            self._site = {}
            return errors
        fresh: dict[Path, Rule] = {}
        for p in rule_files(self.site_dir):
            try:
                fresh[p] = load_rule(p)
            except RuleError as exc:
                errors.append(exc)
                # A broken edit keeps the last good version of that file running.
                if p in self._site:
                    fresh[p] = self._site[p]
        self._site = fresh
        return errors

    def _assemble(self) -> RuleSet:
        disabled = disabled_ids(self.settings, self.data_dir)
        candidates = [r for r in (*self._builtin, *self._site.values()) if r.id not in disabled]
        kept, dup_errors = duplicates(candidates, self.reserved)
        self.errors = [*self._builtin_errors, *self._site_errors, *dup_errors]
        for e in self.errors:
            # A missing rules.site_dir is not logged: each engine (several per worker, again at each
            # worker restart) repeated it; `mailmoat check` and `serve` warn of it once (config.warnings).
            if e is not self._missing_site:
                log.error("rule not loaded: %s", e)
        return RuleSet(kept)

    def all_rules(self) -> list[Rule]:
        """Every parsable rule (including disabled and duplicate ones): used to declare symbols."""
        return [*self._builtin, *self._site.values()]

    def refresh(self) -> bool:
        """Re-read the site directory (and the disabled list) if a file changed (checked at most once per second)."""
        now = self._clock()
        if now - self._last_check < RELOAD_INTERVAL:
            return False
        self._last_check = now
        sig = self._site_signature()
        if sig == self._signature:
            return False
        self._signature = sig
        self._load_site()
        self.ruleset = self._assemble()
        log.info("site rules reloaded from %s: %d rules active", self.site_dir, len(self.ruleset.rules))
        return True


@dataclass
class SampleResult:
    rule: Rule
    sample: str
    expected: bool
    got: bool | None  # None: the sample could not be evaluated
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.got is self.expected and not self.error


def sample_results(
    rules: list[Rule],
    evaluate_sample: Callable[[bytes], tuple[Message, Envelope, list[Finding]]],
    among: list[Rule] | None = None,
) -> list[SampleResult]:
    """Run every rule on its hit and miss samples; `evaluate_sample` parses and runs earlier analyzers.
    A rule that reads other rules' findings runs with them (taken from `among`, else `rules`)."""
    cache: dict[Path, tuple[Message, Envelope, list[Finding]] | str] = {}
    out: list[SampleResult] = []
    for rule in rules:
        single = RuleSet(with_dependencies(rule, among if among is not None else rules))
        for expected, names in ((True, rule.samples_hit), (False, rule.samples_miss)):
            for name in names:
                path = (rule.samples_dir / name).resolve()
                if path not in cache:
                    try:
                        cache[path] = evaluate_sample(path.read_bytes())
                    except OSError as exc:
                        cache[path] = f"cannot read sample: {exc}"
                got = cache[path]
                if isinstance(got, str):
                    out.append(SampleResult(rule, name, expected, None, got))
                    continue
                hits, failed = single.evaluate(*got)
                errors = [error for r, error in failed if r is rule]
                if errors:
                    out.append(SampleResult(rule, name, expected, None, errors[0]))
                else:
                    out.append(SampleResult(rule, name, expected, any(h.rule is rule for h in hits)))
    return out


def missing_samples(rule: Rule) -> list[str]:
    """Problems with a rule's sample list: none given, or files that do not exist."""
    problems = []
    if not rule.samples_hit:
        problems.append("no sample that must hit")
    if not rule.samples_miss:
        problems.append("no sample that must miss")
    for name in (*rule.samples_hit, *rule.samples_miss):
        if not (rule.samples_dir / name).is_file():
            problems.append(f"sample {name} not found in {rule.samples_dir}")
    return problems
