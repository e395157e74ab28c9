"""Gateway fixtures: `mailmoat serve` in-process (background thread) or as a subprocess, on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from mailmoat.cli.serve import Gateway
from mailmoat.config import Settings

MAILMOAT = str(Path(sys.executable).with_name("mailmoat"))


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; its value, or AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def maildir_copies(mail_dir: Path, rcpt: str) -> dict[str, list[Path]]:
    """tracking id (X-Mailmoat-Id) → files holding it, over every folder of one recipient's Maildir."""
    root = mail_dir / rcpt.lower()
    out: dict[str, list[Path]] = {}
    if not root.is_dir():
        return out
    for sub in root.rglob("*"):
        if sub.is_file() and sub.parent.name in ("new", "cur"):
            with open(sub, "rb") as fh:
                msg = email.message_from_binary_file(fh)
            tid = str(msg.get("X-Mailmoat-Id", "")).strip()
            out.setdefault(tid, []).append(sub)
    return out


def count_files(mail_dir: Path, rcpt: str) -> int:
    root = mail_dir / rcpt.lower()
    return sum(len(os.listdir(root / s)) for s in ("new", "cur") if (root / s).is_dir())


class InProcessGateway:
    """The real Gateway (listeners, spool, workers) on its own event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.gateway = Gateway(settings)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="gateway-loop")

    def start(self) -> InProcessGateway:
        self._thread.start()
        self.call(self.gateway.start(), timeout=60)
        return self

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    @property
    def host(self) -> str:
        return self.gateway.address("inbound")[0]

    @property
    def port(self) -> int:
        return self.gateway.address("inbound")[1]

    @property
    def internal_port(self) -> int:
        return self.gateway.address("internal")[1]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.gateway.stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> InProcessGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def inprocess_gateway(settings: Settings) -> Iterator[InProcessGateway]:
    """A started gateway on free ports (listen on port 0 unless the settings say otherwise)."""
    if settings.server.listen.endswith(":2525"):
        settings.server.listen = "127.0.0.1:0"
    gw = InProcessGateway(settings)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A small TOML writer for test configs: scalars and lists, nested tables."""
    lines: list[str] = []

    def emit(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {_toml_value(v)}")
        for k, v in table.items():
            if isinstance(v, dict):
                emit(f"{prefix}.{k}" if prefix else k, v)

    emit("", data)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class SubprocessGateway:
    """`mailmoat serve` as a child process in its own session (so a test can SIGKILL it like a crash)."""

    def __init__(self, data_dir: Path, args: list[str], config: Path | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.config = config
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.log = data_dir.parent / "gateway.log"

    def start(self, timeout: float = 60.0) -> SubprocessGateway:
        cmd = [MAILMOAT, "serve", "--data-dir", str(self.data_dir), *self.args]
        if "--web" not in self.args:
            cmd += ["--web", "127.0.0.1:0"]  # never the default port: tests run side by side
        if self.config is not None:
            cmd += ["-c", str(self.config)]
        env = dict(os.environ)
        env.pop("MAILMOAT_DATA_DIR", None)
        errlog = open(self.log, "a")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=errlog, text=True, start_new_session=True, env=env
        )
        errlog.close()
        proc = self.proc
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"gateway did not start: {self.tail()}") from None
            if "listening on" in line:
                return self
            if proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"gateway exited with {proc.returncode}: {self.tail()}")

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put("")

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "".join(self.output[-20:]) + text[-3000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the gateway process (only it: its workers must die with it on their own)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        self.proc.wait(30)

    def group_alive(self) -> bool:
        """True while any live (non-zombie) process of the gateway's process group exists."""
        if self.proc is None:
            return False
        pgid = self.proc.pid
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False

    def reap_group(self) -> bool:
        """Kill whatever is left of the gateway's process group; True when something was left."""
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return True

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for a clean exit; the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.reap_group()
        return code
