"""A configuration value that cannot work is refused when the file is loaded, so that `check`,
`serve` and every other command agree, in one line naming the file and the setting; one that can
work but is probably a mistake is a warning in `mailmoat check` and in the serve log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mailmoat import config
from mailmoat.cli import app
from mailmoat.config import ConfigError
from tests.support.gateway import write_toml
from tests.support.net import free_port

runner = CliRunner()
MAILMOAT = [sys.executable, "-c", "from mailmoat.cli import main; main()"]

# (id, the file's tables, the setting the error must name)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("deny_ip", {"policy": {"deny_ips": ["999.1.1.1"]}}, "policy.deny_ips"),
    ("allow_ip", {"policy": {"allow_ips": ["10.0.0.0/33"]}}, "policy.allow_ips"),
    ("analyzer_failure", {"policy": {"analyzer_failure": "explode"}}, "policy.analyzer_failure"),
    ("score_symbol", {"policy": {"scores": {"NOT_A_SYMBOL": 5.0}}}, "policy.scores"),
    ("composite_syntax", {"policy": {"composites": {"X": {"expr": "((FOO", "score": 5.0}}}}, "policy.composites.X"),
    ("composite_symbol", {"policy": {"composites": {"X": {"expr": "NOT_A_SYMBOL", "score": 5.0}}}}, "policy.composites.X"),
    ("blobs", {"blobs": {"backend": "s3"}}, "blobs.backend"),
    ("internal_listen_port", {"server": {"internal_listen": "127.0.0.1:99999"}}, "server.internal_listen"),
    ("internal_listen_garbage", {"server": {"internal_listen": "nonsense"}}, "server.internal_listen"),
    ("domains", {"server": {"domains": []}}, "server.domains"),
    ("relay_networks", {"server": {"relay_networks": ["not-a-cidr"]}}, "server.relay_networks"),
    ("workers", {"server": {"workers": -1}}, "server.workers"),
    ("max_message_size", {"server": {"max_message_size": -5}}, "server.max_message_size"),
    ("relay_scheme", {"delivery": {"relay_to": "http://127.0.0.1:2999"}}, "delivery.relay_to"),
    ("recall_backend", {"recall": {"backend": "pop3"}}, "recall.backend"),
    ("recall_mode", {"recall": {"mode": "shred"}}, "recall.mode"),
    ("recall_auto", {"recall": {"auto": "sometimes"}}, "recall.auto"),
    ("clamav_scan", {"attachments": {"clamav": {"scan": "everything"}}}, "attachments.clamav.scan"),
    ("clamav_on_failure", {"attachments": {"clamav": {"on_failure": "ignore"}}}, "attachments.clamav.on_failure"),
    ("containment", {"accounts": {"containment": "sometimes"}}, "accounts.containment"),
    ("db_garbage", {"db": "notaurl"}, "db"),
]


def _config(tmp_path: Path, tables: dict[str, Any]) -> Path:
    base: dict[str, Any] = {"data_dir": str(tmp_path / "var"), "server": {"domains": ["example.test"]}}
    for key, value in tables.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return write_toml(tmp_path / "mailmoat.toml", base)


def _refused(output: str, path: Path, setting: str) -> None:
    """One `error: <file>: <setting>: ...` line, and no traceback."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    assert errors[0].startswith(f"error: {path}: {setting}: "), output


@pytest.mark.parametrize(("tables", "setting"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_refuses_a_value_that_cannot_work(tmp_path: Path, tables: dict[str, Any], setting: str) -> None:
    path = _config(tmp_path, tables)
    result = runner.invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    _refused(result.output, path, setting)


@pytest.mark.parametrize(
    ("tables", "setting"),
    [b[1:] for b in BAD if b[0] not in ("score_symbol", "composite_symbol")],
    ids=[b[0] for b in BAD if b[0] not in ("score_symbol", "composite_symbol")],
)
def test_loading_refuses_a_value_that_cannot_work(tmp_path: Path, tables: dict[str, Any], setting: str) -> None:
    # Every command loads its settings through config.load: the refusal is there, not in one command.
    path = _config(tmp_path, tables)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}: {setting}: ")


def test_policy_symbols_are_checked_in_config(tmp_path: Path) -> None:
    # Symbol names need the analyzers' table (slow to build): check_policy, called by check and serve.
    settings = config.load(_config(tmp_path, {"policy": {"scores": {"NOT_A_SYMBOL": 5.0}}}))
    with pytest.raises(ConfigError, match=r"^policy\.scores: unknown symbol\(s\) NOT_A_SYMBOL"):
        config.check_policy(settings)
    config.check_policy(config.Settings())


def _serve(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`mailmoat serve` as the administrator runs it; the timeout only ends a run that went wrong."""
    return subprocess.run(
        [*MAILMOAT, "serve", "-c", str(path), "--listen", f"127.0.0.1:{free_port()}",
         "--web", "off", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize(
    ("tables", "setting"),
    [b[1:] for b in BAD if b[0] in ("deny_ip", "score_symbol", "max_message_size", "recall_backend", "db_garbage")],
    ids=[b[0] for b in BAD if b[0] in ("deny_ip", "score_symbol", "max_message_size", "recall_backend", "db_garbage")],
)
def test_serve_refuses_it_before_starting(tmp_path: Path, tables: dict[str, Any], setting: str) -> None:
    path = _config(tmp_path, tables)
    done = _serve(path)
    assert done.returncode == 2, done.stdout + done.stderr
    _refused(done.stdout + done.stderr, path, setting)
    assert "listening" not in done.stdout


def test_serve_says_in_one_line_that_the_database_does_not_answer(tmp_path: Path) -> None:
    path = _config(tmp_path, {"db": f"postgresql://mailmoat@127.0.0.1:{free_port()}/none"})
    done = _serve(path, "--workers", "0")
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "database" in errors[0] and "127.0.0.1" in errors[0], out


WARNED: list[tuple[str, dict[str, Any], str]] = [
    ("rules_site_dir", {"rules": {"site_dir": "/nonexistent/mailmoat-rules"}}, "rules.site_dir"),
    ("intel_dir", {"intel": {"dirs": ["/nonexistent/mailmoat-intel"]}}, "intel.dirs"),
    ("thresholds", {"policy": {"thresholds": {"tag": 20.0, "quarantine": 10.0, "reject": 5.0}}}, "policy.thresholds"),
    (
        "direction_thresholds",
        {"policy": {"direction": {"internal": {"thresholds": {"tag": 9.0, "quarantine": 8.0}}}}},
        "policy.direction.internal.thresholds",
    ),
]


@pytest.mark.parametrize(("tables", "setting"), [w[1:] for w in WARNED], ids=[w[0] for w in WARNED])
def test_check_warns_of_a_probable_mistake(tmp_path: Path, tables: dict[str, Any], setting: str) -> None:
    path = _config(tmp_path, tables)
    result = runner.invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("WARN  configuration: ")]
    assert len(warned) == 1 and f"configuration: {setting}: " in warned[0], result.output
    assert config.warnings(config.load(path)) and all(w.startswith(f"{setting}: ") for w in config.warnings(config.load(path)))


def test_the_example_and_the_defaults_have_nothing_to_warn_of() -> None:
    assert config.warnings(config.Settings()) == []
    assert config.warnings(config.load(Path(__file__).resolve().parent.parent / "mailmoat.example.toml")) == []


def test_serve_warns_once_of_a_missing_rules_dir(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-rules"
    path = _config(tmp_path, {"rules": {"site_dir": str(missing)}, "server": {"workers": 1}})
    proc = subprocess.Popen(
        [*MAILMOAT, "serve", "-c", str(path), "--listen", f"127.0.0.1:{free_port()}",
         "--web", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "delivering to" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    mentions = [line for line in err.splitlines() if str(missing) in line]
    assert len(mentions) == 1 and "WARNING" in mentions[0] and "rules.site_dir" in mentions[0], err


def test_a_policy_table_in_the_file_adds_to_the_built_in_ones(tmp_path: Path) -> None:
    """Setting the internal profile kept the outbound one (else outbound rejected at 20, not 1000),
    and setting one group cap kept the content cap: "keep only what you change" holds for tables."""
    f = tmp_path / "mailmoat.toml"
    f.write_text("[policy.direction.internal.thresholds]\ntag = 5.0\n\n[policy.group_caps]\nurl = 12.0\n", encoding="utf-8")
    pol = config.load(f).policy
    assert pol.direction["outbound"]["thresholds"]["reject"] == 1000.0
    assert pol.direction["internal"]["thresholds"] == {"tag": 5.0, "quarantine": 8.0, "reject": 1000.0}
    assert pol.direction["internal"]["group_caps"] == {"content": 3.5}
    assert pol.group_caps == {"content": 4.0, "url": 12.0}
