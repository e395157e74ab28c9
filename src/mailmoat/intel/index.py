"""In-memory indicator index over the files of `intel.dirs`, reloaded when a file changes."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mailmoat.intel.loaders import Indicator, LoadError, load_file, normalise, normalise_url
from mailmoat.urlcheck import domains as dom
from mailmoat.urlcheck.links import host_of, shared_page

log = logging.getLogger(__name__)

_SKIP_SUFFIXES = (".tmp", ".swp", ".bak", ".part", "~", ".md", ".gz", ".zip")


@dataclass
class _Tables:
    exact: dict[tuple[str, str], Indicator] = field(default_factory=dict)
    # CIDR ranges by (IP version, prefix length) → network address → indicator: a lookup costs one
    # dict probe per prefix length in use, however many ranges a feed lists.
    networks: dict[tuple[int, int], dict[int, Indicator]] = field(default_factory=dict)
    # Listed URLs on a host everyone shares, by the page they open (shared_pages.txt): a feed lists
    # one file of an attacker's bucket or one view of a form, the mail links another.
    pages: dict[str, Indicator] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _FileState:
    stamp: tuple[int, int]  # (mtime_ns, size)
    indicators: list[Indicator]


class IntelIndex:
    """Indicators from every file under the configured directories (or single files).

    `refresh()` looks at the files at most once per `check_interval` seconds and reloads only
    those whose modification time or size changed; a file that fails to load keeps its last
    good indicators (a half-written feed never empties a list).
    """

    def __init__(self, paths: list[str], check_interval: float = 1.0) -> None:
        self.paths = [Path(p) for p in paths]
        self.check_interval = check_interval
        self.errors: dict[str, str] = {}
        self.generation = 0
        self._files: dict[str, _FileState] = {}
        self._tables = _Tables()
        self._checked = 0.0
        self._lock = threading.Lock()
        self.refresh(force=True)

    # -- loading -------------------------------------------------------------------------------

    def _list_files(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for base in self.paths:
            if base.is_file():
                candidates = [base]
            elif base.is_dir():
                candidates = sorted(p for p in base.rglob("*") if p.is_file())
            else:
                continue
            for p in candidates:
                name = p.name
                if name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES) or name.lower() == "readme":
                    continue
                try:
                    st = p.stat()
                except OSError:
                    continue
                found[str(p)] = (st.st_mtime_ns, st.st_size)
        return found

    def due(self) -> bool:
        """Whether the next refresh() would look at the files (the check interval has passed)."""
        return time.monotonic() - self._checked >= self.check_interval

    def refresh(self, force: bool = False) -> bool:
        """Reload changed files; True when the index changed. Cheap when called for every message."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_interval:
            return False
        with self._lock:
            if not force and now - self._checked < self.check_interval:
                return False
            self._checked = now
            listing = self._list_files()
            changed = set(self._files) - set(listing)
            for path in changed:
                self._files.pop(path, None)
                self.errors.pop(path, None)
            for path, stamp in listing.items():
                old = self._files.get(path)
                if old is not None and old.stamp == stamp:
                    continue
                changed.add(path)
                try:
                    if old is not None and old.indicators and stamp[1] == 0:
                        # `> feed.txt` and many downloaders empty a file before writing it: an empty
                        # file that held indicators is one being rewritten, not a feed withdrawn.
                        raise LoadError(f"{path} is empty; its {len(old.indicators)} indicators stay "
                                        f"until it holds some again (remove the file to drop them)")
                    inds = load_file(path)
                except LoadError as exc:
                    self.errors[path] = str(exc)
                    log.warning("intel: %s", exc)
                    if old is not None:
                        old.stamp = stamp  # keep the last good indicators until the file is fixed
                    else:
                        self._files[path] = _FileState(stamp, [])
                    continue
                self.errors.pop(path, None)
                self._files[path] = _FileState(stamp, inds)
            if not changed:
                return False
            self._tables = self._build()
            self.generation += 1
            log.info("intel: %s", ", ".join(f"{k} {v}" for k, v in sorted(self._tables.counts.items())) or "no indicators")
            return True

    def _build(self) -> _Tables:
        t = _Tables()
        for path in sorted(self._files):
            for ind in self._files[path].indicators:
                if ind.kind == "ip" and "/" in ind.value:
                    net = ipaddress.ip_network(ind.value, strict=False)
                    t.networks.setdefault((net.version, net.prefixlen), {}).setdefault(int(net.network_address), ind)
                else:
                    t.exact.setdefault((ind.kind, ind.value), ind)
                    page = shared_page(host_of(ind.value), ind.value) if ind.kind == "url" else ""
                    if page:
                        t.pages.setdefault(page, ind)
                t.counts[ind.kind] = t.counts.get(ind.kind, 0) + 1
        return t

    # -- matching ------------------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._tables.counts)

    def __len__(self) -> int:
        return sum(self._tables.counts.values())

    def match_domain(self, host: str) -> Indicator | None:
        """A listed domain equal to host or to one of its parents (down to the registrable domain)."""
        h = dom.to_ascii(host.strip().rstrip(".").lower())
        if not h or dom.is_ip(h):
            return None
        exact = self._tables.exact
        for name in dom.parents(h):
            ind = exact.get(("domain", name))
            if ind is not None:
                return ind
        return None

    def match_url(self, url: str) -> Indicator | None:
        """A listed URL equal to this one once normalised (scheme/host case, fragment, default port, bare '/')."""
        norm = normalise_url(url)
        ind = self._tables.exact.get(("url", norm))
        if ind is None and norm.startswith("https://"):
            ind = self._tables.exact.get(("url", "http://" + norm[8:]))
        elif ind is None and norm.startswith("http://"):
            ind = self._tables.exact.get(("url", "https://" + norm[7:]))
        return ind

    def match_page(self, url: str) -> Indicator | None:
        """A listed URL that opens the same page on a host everyone shares: another file in the
        listed storage bucket, another view of the listed form (not the platform's other pages)."""
        page = shared_page(host_of(url), url)
        return self._tables.pages.get(page) if page else None

    def match_sender(self, addr: str) -> Indicator | None:
        """A listed sender address, or a listed '@domain' sender entry for its domain or a parent."""
        norm = normalise("sender", addr)
        if norm is None:
            return None
        exact = self._tables.exact
        ind = exact.get(("sender", norm))
        if ind is not None:
            return ind
        for name in dom.parents(norm.rpartition("@")[2]):
            ind = exact.get(("sender", f"@{name}"))
            if ind is not None:
                return ind
        return None

    def match_ip(self, ip: str) -> Indicator | None:
        try:
            addr = ipaddress.ip_address(ip.strip().strip("[]"))
        except ValueError:
            return None
        ind = self._tables.exact.get(("ip", str(addr)))
        if ind is not None:
            return ind
        bits = 32 if addr.version == 4 else 128
        value = int(addr)
        for (version, prefix), table in sorted(self._tables.networks.items(), key=lambda kv: -kv[0][1]):
            if version != addr.version:
                continue
            mask = ((1 << prefix) - 1) << (bits - prefix) if prefix else 0
            nind = table.get(value & mask)
            if nind is not None:
                return nind
        return None

    def match_hash(self, sha256: str) -> Indicator | None:
        return self._tables.exact.get(("sha256", sha256.strip().lower()))

