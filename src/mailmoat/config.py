"""Typed settings: embedded defaults, overridden by mailmoat.toml, overridden by command-line options."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file or option that cannot be used, with a message saying why."""


@dataclass
class ServerSettings:
    hostname: str = "mailmoat.localhost"
    listen: str = "127.0.0.1:2525"  # inbound MX listener
    internal_listen: str = ""  # relay listener for the mail system's internal/outbound mail
    web: str = "127.0.0.1:8025"
    domains: list[str] = field(default_factory=lambda: ["localhost"])  # protected domains
    relay_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    workers: int = 1  # processing worker processes (0 = in the listener's process)
    tls_cert: str = ""
    tls_key: str = ""
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 1000
    max_line_length: int = 10000
    max_connections_per_ip: int = 50
    smtp_timeout: int = 300


@dataclass
class DeliverySettings:
    relay_to: str = ""  # "" = local Maildir store; smtp://host:port or lmtp://host:port
    retry_schedule: list[int] = field(default_factory=lambda: [60, 300, 900, 1800, 3600])
    max_queue_age: int = 5 * 24 * 3600  # then bounce
    connect_timeout: float = 30.0
    send_dsn: bool = True  # DSN for permanent failures after 250 (never to spam/forged senders)


@dataclass
class PolicyThresholds:
    tag: float = 5.0
    quarantine: float = 10.0
    reject: float = 20.0


@dataclass
class PolicySettings:
    thresholds: PolicyThresholds = field(default_factory=PolicyThresholds)
    subject_prefix: str = "[SUSPICIOUS]"
    scores: dict[str, float] = field(default_factory=dict)  # symbol -> score override
    # group -> max total; the content heuristics are weak signs that only tip a message the other
    # engines already find suspect, so together they stay below the tag threshold.
    group_caps: dict[str, float] = field(default_factory=lambda: {"content": 4.0})
    composites: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {expr, score, group, description}
    # "internal" -> {thresholds, scores}: mail between colleagues is trusted by its readers, so
    # phishing found there is held (quarantine), never only tagged, and nothing is rejected. Its
    # tag line is 4, so the content cap there is 3.5: wording alone (a security team's warning
    # that quotes the lures) must not tag, as it cannot from outside.
    direction: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "internal": {
                "thresholds": {"tag": 4.0, "quarantine": 8.0, "reject": 1000.0},
                "group_caps": {"content": 3.5},
            },
            "outbound": {"thresholds": {"tag": 5.0, "quarantine": 9.0, "reject": 1000.0}},
        }
    )
    domain: dict[str, dict[str, Any]] = field(default_factory=dict)  # rcpt domain -> {thresholds, scores}
    allow_senders: list[str] = field(default_factory=list)
    allow_domains: list[str] = field(default_factory=list)
    allow_ips: list[str] = field(default_factory=list)
    deny_senders: list[str] = field(default_factory=list)
    deny_domains: list[str] = field(default_factory=list)
    deny_ips: list[str] = field(default_factory=list)
    analyzer_timeout: float = 10.0  # seconds per analyzer
    analyzer_failure: str = "score"  # "score" (ANALYZER_FAILED adds its score) or "tempfail"
    reject_in_session: bool = False  # scan during DATA and reject with 550 instead of quarantining
    # Mailboxes where staff report suspicious mail (phish@...): a colleague's report there is
    # scanned and recorded but delivered (at most tagged), and never counts against the reporter.
    report_addresses: list[str] = field(default_factory=list)
    # A reported message is condemned (and its copies recalled as recall.auto says) once this many
    # different colleagues reported it; 0 = never by itself, the security team decides.
    report_condemn_after: int = 0


@dataclass
class RulesSettings:
    site_dir: str = ""  # directory of site rule files (*.yml), reloaded on change
    disabled: list[str] = field(default_factory=list)  # rule ids


@dataclass
class RetentionSettings:
    raw_days: int = 30


@dataclass
class DnsSettings:
    nameservers: list[str] = field(default_factory=list)  # empty = authentication "not checked"
    port: int = 53
    timeout: float = 3.0


@dataclass
class AuthSettings:
    """Sender authentication (SPF, DKIM, DMARC, ARC); DNS comes from [dns]."""

    # ARC sealers (d= of the newest ARC-Seal) whose passing chain excuses a DMARC failure:
    # mailing lists and forwarders the site trusts to have checked the original sender.
    trusted_arc_sealers: list[str] = field(default_factory=list)


@dataclass
class OrgSettings:
    """Who the organisation is: used by impersonation checks."""

    departments: list[str] = field(
        default_factory=lambda: [
            "财务部", "财务", "人事部", "人事", "行政部", "行政", "IT部", "信息部", "人力资源部",
            "Finance", "HR", "Human Resources", "Payroll", "IT Support", "IT Helpdesk", "Accounting",
        ]
    )
    executives: list[str] = field(default_factory=list)  # names a display name may claim ("Zhang Wei", "张伟")
    names: list[str] = field(default_factory=list)  # the organisation's own names ("Acme", "某某公司")
    # Extra brands to protect, in the brand-list format: "domain | other.domain | Display Name".
    brands: list[str] = field(default_factory=list)
    # The languages people here read ("en", "zh", ...): inbound mail written in another one is
    # LANGUAGE_NOT_READ_HERE. Empty: every language is read.
    languages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from mailmoat.classify.language import NAMES

        # A typo would make every inbound message "not read here".
        if unknown := [code for code in self.languages if code not in NAMES]:
            raise ConfigError(f"org.languages: unknown language codes {unknown}; known: {', '.join(NAMES)}")


@dataclass
class QrSettings:
    enabled: bool = True
    max_images: int = 40
    max_pixels: int = 16_000_000  # per image (a 4000x4000 photo); larger ones are a qr:image-too-large defect
    max_pdf_pages: int = 5
    pdf_dpi: int = 150
    time_budget: float = 2.0  # seconds per message


@dataclass
class ClamavSettings:
    enabled: bool = False
    address: str = "127.0.0.1:3310"  # host:port or unix socket path
    timeout: float = 30.0
    on_failure: str = "score"  # "score" or "tempfail"
    scan: str = "attachments"  # "attachments" (each, plus members decrypted with a body password), "message" (raw) or "both"
    max_size: int = 25 * 1024 * 1024  # bytes sent per stream (keep at or below clamd's StreamMaxLength)


@dataclass
class AttachmentSettings:
    blocked_exts: list[str] = field(
        default_factory=lambda: [
            "exe", "dll", "scr", "com", "pif", "bat", "cmd", "ps1", "vbs", "vbe", "js", "jse", "wsf",
            "wsh", "hta", "lnk", "msi", "jar", "iso", "img", "vhd", "vhdx", "one", "cpl", "reg",
            "mobileconfig",  # Apple configuration profiles: install VPNs, root certificates, MDM enrolment
        ]
    )
    warned_exts: list[str] = field(default_factory=lambda: ["docm", "xlsm", "pptm", "html", "htm", "svg", "zip", "rar", "7z"])
    archive_max_depth: int = 4
    archive_max_members: int = 1000
    archive_max_total: int = 200 * 1024 * 1024
    archive_max_member: int = 50 * 1024 * 1024
    archive_max_ratio: float = 200.0
    clamav: ClamavSettings = field(default_factory=ClamavSettings)
    yara_dir: str = ""


@dataclass
class IntelSettings:
    dirs: list[str] = field(default_factory=list)  # indicator files (txt, csv, MISP json, STIX json)


@dataclass
class ClassifierSettings:
    enabled: bool = True
    model: str = ""  # default: <data_dir>/models/bayes.model (or a bayes.json beside it, from before)
    # BAYES_SPAM grows (in log-odds) from 0 at spam_from to its full score at spam_full.
    spam_from: float = 0.5
    # 0.8: chosen on a split of the training half only (bench/detection_eval.py --dev): no more
    # legitimate mail above it than above 0.9 there, and more phishing; see docs/detection.md.
    spam_full: float = 0.8
    # Housekeeping learns from the store this often (0 = never): released mail as ham, recalled
    # mail as phishing, as `mailmoat train --from-store` does.
    learn_every_hours: float = 24.0
    # And mail delivered untouched at least this many days ago as ham (0 = not): the site's own
    # everyday mail. Off by default: a campaign nobody has reported yet would be learnt as ham.
    learn_delivered_after_days: float = 0.0
    # And the mail the site's own accounts sent out, at least this many days ago, as ham (0 = not):
    # on by default, since what the staff write is the surest ham a site has. It waits for
    # containment and recall to have acted on a stolen account; accounts that ever had an
    # incident are left out.
    learn_outbound_after_days: float = 3.0
    learn_max_delivered: int = 5000  # per run, newest first
    # NEAR_COPY_CONDEMNED: a message at least this similar (estimated Jaccard of its runs of three
    # words and CJK 4-grams) to one learnt as spam or phishing (trained: the file beside the model;
    # recalled: the store's near_copy_verdicts). On the evaluation corpora no ham
    # came above 0.31 against 3,445 learnt spam and phishing messages (docs/detection-history.md,
    # "Ninth session").
    near_copies: bool = True
    near_copy_similarity: float = 0.7


@dataclass
class WaveSettings:
    """LINK_DOMAIN_WAVE: a link domain new to this site that many unrelated senders link at once."""

    enabled: bool = True
    # A link domain first seen within this many hours is young; the wave is counted over the same span.
    window_hours: float = 48.0
    # Distinct unrelated senders, this message's included: registrable From domains (the link's own
    # left out), or separate addresses at free-mail providers.
    min_senders: int = 4


@dataclass
class CondemnedLinkSettings:
    """LINK_CONDEMNED_DESTINATION: links to where mail condemned at this site led."""

    enabled: bool = True
    # Condemned mail that arrived within this many days counts.
    lookback_days: float = 30.0
    # A destination counts only if this site first saw it at most this many days before the
    # condemned mail arrived: a domain it knew long before (a mail service's click tracker, a
    # partner, a CDN) is no attacker's, whatever else that mail linked.
    young_days: float = 7.0


@dataclass
class ImapRecallSettings:
    host: str = "127.0.0.1"
    port: int = 143
    ssl: bool = False
    master_user: str = ""  # e.g. "admin": logs in as "user*admin"
    master_password: str = ""
    auth: str = "master"  # "master" (user*admin) or "plain" (SASL PLAIN authzid)
    connections: int = 10
    # A server-side view of every folder (Dovecot virtual plugin, e.g. "MailmoatAll/All"): one
    # search there proves a copy is gone instead of one per folder. Empty: search each folder.
    all_folders: str = ""


@dataclass
class DoveadmRecallSettings:
    url: str = "http://127.0.0.1:8080/doveadm/v1"
    api_key: str = ""


@dataclass
class RecallSettings:
    backend: str = "maildir"  # "maildir", "imap", "doveadm"
    mode: str = "move"  # "move" into the hidden folder, or "delete"
    hidden_folder: str = "MailmoatRecall"
    approval_above: int = 0  # jobs with more copies than this wait for approval (0 = never)
    auto: str = "automatic"  # "automatic", "approval" or "off"
    lookback_days: int = 7
    # After a recall a person (or an indicator) started, the delivered mail of the last this many
    # hours that shares a sender, a link domain or a subject with it is judged again, now seeing
    # the recall, and recalled when that condemns it. 0 = only by `mailmoat rescan`.
    follow_up_hours: float = 72.0
    mailbox_map: dict[str, str] = field(default_factory=dict)  # address -> login
    login_format: str = "{address}"  # or "{local}"
    imap: ImapRecallSettings = field(default_factory=ImapRecallSettings)
    doveadm: DoveadmRecallSettings = field(default_factory=DoveadmRecallSettings)
    max_retries: int = 3


@dataclass
class AccountsSettings:
    enabled: bool = True
    burst_window: int = 600  # seconds
    burst_recipients: int = 50  # distinct internal recipients in the window
    fanout_recipients: int = 10  # colleagues who got the same body/URL/QR from one account in the window
    external_domains: int = 30  # distinct external recipient domains in an hour (spam relay)
    containment: str = "automatic"  # "automatic", "approval" or "alert"
    webhook: str = ""  # URL that gets a JSON POST per incident
    security_address: str = ""  # gets an email per incident (through the gateway's own delivery)
    outbound_rate_per_hour: int = 500  # outbound recipients per sender per hour; more are held
    min_history: int = 10  # messages an account must have sent before "new IP/name" means something
    learn_after: int = 24 * 3600  # a new IP, host or name counts as usual once it is this old
    # Which Received header carries the submitting client: the n-th one (0 = newest) below the
    # gateway's own; with submission_hosts, the newest one added by one of those hosts.
    trusted_hop: int = 0
    submission_hosts: list[str] = field(default_factory=list)
    suspect_window: int = 3600  # recall reaches back at most this far before containment (seconds)
    keep_events_days: int = 14


@dataclass
class DigestSettings:
    """A mail to each local recipient listing what the gateway held for them, with links to release it."""

    enabled: bool = False
    # Local hours of the day at which digests go out; one that was missed (gateway down) goes out
    # at the next check. A recipient gets one only when something new was held since the last one.
    hours: list[int] = field(default_factory=lambda: [8])
    # How users reach the console (https://mailmoat.example.org): each listed message gets a release
    # link there. "" = the digest lists the messages without links (users ask the administrators).
    console_url: str = ""
    # Held mail is listed, and may be released by its recipient, only when every category it has is
    # one of these (policy.categories: phishing, spam, malware, qr, impersonation, internal, other).
    categories: list[str] = field(default_factory=lambda: ["spam", "other"])
    # Held mail whose categories are all in these (or in `categories`) is listed too, with a link
    # that asks the administrators to release it rather than releasing it: for example
    # ["phishing", "qr", "impersonation"]. [] = such mail is not listed.
    request_categories: list[str] = field(default_factory=list)
    # A recipient whose release request is declined is told so, with the reason given (the
    # message stays held); false leaves them to find out by asking.
    tell_declines: bool = True
    # The release page also offers "Release, and always deliver mail from this sender to me": that
    # recipient's copy of later mail from the sender held in `categories` is released at once
    # (never phishing, malware or mail whose DMARC failed).
    safe_senders: bool = True
    link_days: float = 7.0  # a release link works this long
    days: float = 14.0  # held mail older than this is no longer listed
    max_items: int = 100  # per digest, newest first
    sender: str = ""  # the From address; default postmaster@<server.hostname>
    language: str = "en"  # "en" or "zh"
    # Only recipients in these of server.domains get digests ([] = every one of them).
    domains: list[str] = field(default_factory=list)
    # Addresses that never get one (shared mailboxes, distribution lists).
    exclude: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from mailmoat.policy.categories import CATEGORIES, OTHER

        self.domains = [d.strip().lower().lstrip("@").rstrip(".") for d in self.domains if d.strip()]
        self.exclude = [a.strip().strip("<>").lower() for a in self.exclude if a.strip()]
        if bad_addr := [a for a in self.exclude if "@" not in a]:
            raise ConfigError(f"digest.exclude: {bad_addr} are not addresses")

        for name in ("categories", "request_categories"):
            if unknown := [c for c in getattr(self, name) if c not in (*CATEGORIES, OTHER)]:
                raise ConfigError(f"digest.{name}: unknown {unknown}; known: {', '.join((*CATEGORIES, OTHER))}")
        if bad := [h for h in self.hours if not 0 <= h <= 23]:
            raise ConfigError(f"digest.hours: {bad} is not an hour of the day (0-23)")
        if self.enabled and not self.hours:
            raise ConfigError("digest.hours: empty, so no digest would ever go out")
        if self.language not in ("en", "zh"):
            raise ConfigError(f"digest.language: {self.language!r}; known: en, zh")


@dataclass
class BannerSettings:
    """A banner above the text of mail from outside: why a tagged message is suspect, and optionally
    a notice on all the rest of it."""

    enabled: bool = False
    external: bool = False  # also a notice on every other message from outside
    language: str = "en"  # "en" or "zh"

    def __post_init__(self) -> None:
        if self.language not in ("en", "zh"):
            raise ConfigError(f"banner.language: {self.language!r}; known: en, zh")


@dataclass
class ReportsSettings:
    """What colleagues who report mail to the report mailbox (policy.report_addresses) are told."""

    # Once the security team decided (condemned, recalled or dismissed), each reporter gets a mail
    # saying what became of what they reported.
    feedback: bool = False
    # Each report is answered within minutes with a receipt: thanks, the security team will look at it.
    acknowledge: bool = False
    language: str = "en"  # "en" or "zh"
    sender: str = ""  # the From address; default postmaster@<server.hostname>

    def __post_init__(self) -> None:
        if self.language not in ("en", "zh"):
            raise ConfigError(f"reports.language: {self.language!r}; known: en, zh")


@dataclass
class ArcSealSettings:
    """An ARC set (RFC 8617) added to the mail the gateway hands to the mail system, so that a mail
    system behind it that trusts this sealer can use the gateway's authentication results after its
    edits (banner, tagged subject) broke the sender's DKIM signature."""

    enabled: bool = False
    domain: str = ""  # d=: the domain whose DNS publishes the key (selector._domainkey.domain)
    selector: str = ""  # s=
    key_file: str = ""  # the private key, PEM (RSA, 2048 bits or more)
    # Which mail is sealed: inbound (from outside) by default; internal and outbound may be added.
    directions: list[str] = field(default_factory=lambda: ["inbound"])

    def __post_init__(self) -> None:
        self.domain = self.domain.strip().lower().rstrip(".")
        self.selector = self.selector.strip()
        if unknown := [d for d in self.directions if d not in ("inbound", "internal", "outbound")]:
            raise ConfigError(f"arc_seal.directions: unknown {unknown}; known: inbound, internal, outbound")
        if self.enabled and not (self.domain and self.selector and self.key_file):
            raise ConfigError("arc_seal: enabled needs domain, selector and key_file")


@dataclass
class WebSettings:
    secret_key: str = ""  # not used (sessions are random tokens in the store); kept so that old files load
    admin_password: str = ""  # env MAILMOAT_ADMIN_PASSWORD also works
    session_hours: float = 12.0  # console login lifetime
    secure_cookies: bool = False  # set the Secure flag (when the console is served over HTTPS)
    login_window: int = 300  # seconds over which failed logins are counted
    login_max_per_ip: int = 20  # failed logins from one address in the window before 429
    login_max_per_user: int = 5  # failed logins for one user name in the window before 429
    trusted_proxies: list[str] = field(default_factory=list)  # addresses whose X-Forwarded-For is believed


@dataclass
class TasksSettings:
    """Long-running work (recall, re-scan, profiles): procrastinate on PostgreSQL, in-process on SQLite."""

    queue: str = "mailmoat"
    recall_batch: int = 100  # copies per task: one recall job is spread over the workers in batches
    copy_lease: float = 300.0  # a claimed copy is taken over only this long after its claim (worker died)
    # Seconds a worker waits between the copies of a recall batch (0 = none), so that a large recall
    # does not hammer the mail store; keep recall_batch x recall_pace well below copy_lease.
    recall_pace: float = 0.0
    stalled_after: float = 30.0  # a worker without heartbeat this long is dead: its tasks run again
    heartbeat: float = 5.0  # seconds between a worker's heartbeats
    concurrency: int = 4  # tasks one `mailmoat worker` runs at once
    # On PostgreSQL, `mailmoat serve` runs one task worker process of its own, so a single node needs
    # no second command; set false where dedicated `mailmoat worker` processes do all the task work.
    serve_worker: bool = True
    health_listen: str = ""  # HOST:PORT where `mailmoat worker` answers /healthz and /readyz


@dataclass
class BlobSettings:
    """Where retained raw messages live so that every node reaches them."""

    backend: str = "file"  # "file": a directory (shared mount for several nodes); "postgres": large objects
    path: str = ""  # for "file"; default <data_dir>/raw


@dataclass
class Settings:
    data_dir: str = "./var"
    db: str = ""  # SQLAlchemy URL; default sqlite:///<data_dir>/mailmoat.db
    server: ServerSettings = field(default_factory=ServerSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    rules: RulesSettings = field(default_factory=RulesSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    org: OrgSettings = field(default_factory=OrgSettings)
    qr: QrSettings = field(default_factory=QrSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    intel: IntelSettings = field(default_factory=IntelSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    recall: RecallSettings = field(default_factory=RecallSettings)
    accounts: AccountsSettings = field(default_factory=AccountsSettings)
    waves: WaveSettings = field(default_factory=WaveSettings)
    condemned_links: CondemnedLinkSettings = field(default_factory=CondemnedLinkSettings)
    web: WebSettings = field(default_factory=WebSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    banner: BannerSettings = field(default_factory=BannerSettings)
    arc_seal: ArcSealSettings = field(default_factory=ArcSealSettings)
    reports: ReportsSettings = field(default_factory=ReportsSettings)
    tasks: TasksSettings = field(default_factory=TasksSettings)
    blobs: BlobSettings = field(default_factory=BlobSettings)

    @property
    def data_path(self) -> Path:
        """The data dir made absolute: paths under it go into the record, and must name the same file
        whatever directory a later command runs in."""
        return Path(self.data_dir).absolute()

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(self.data_path / 'mailmoat.db').resolve()}"

    @property
    def spool_dir(self) -> Path:
        return self.data_path / "spool"

    @property
    def mail_dir(self) -> Path:
        """Root of the embedded Maildir store: one Maildir per recipient address."""
        return self.data_path / "mailboxes"

    @property
    def raw_dir(self) -> Path:
        """Retained raw messages (quarantine, re-scan, restore)."""
        return self.data_path / "raw"

    @property
    def models_dir(self) -> Path:
        return self.data_path / "models"


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return _build(tp, value, where)  # type: ignore[arg-type]
    if origin in (list,):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        (inner,) = typing.get_args(tp)
        return [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict,):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string")
        return value
    return value


def _merged(default: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`given` over `default`, table by table: a file that sets one value keeps the other defaults."""
    out = dict(default)
    for key, value in given.items():
        old = out.get(key)
        out[key] = _merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


# Tables whose defaults a file adds to rather than replaces: setting [policy.direction.internal]
# dropped the built-in outbound profile (outbound then rejected at 20, not 1000), and setting one
# group cap dropped the content cap. "Keep only what you change" must hold for them too.
_ADDED_TO = {("PolicySettings", "direction"), ("PolicySettings", "group_caps")}


def _build(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where or 'top level'}: unknown setting {key!r}")
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where else key)
        factory = known[key].default_factory
        if (cls.__name__, key) in _ADDED_TO and isinstance(kwargs[key], dict) and callable(factory):
            kwargs[key] = _merged(factory(), kwargs[key])
    return cls(**kwargs)


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from a TOML file (or embedded defaults); MAILMOAT_DATA_DIR gives data_dir when the
    file does not (the command line's --data-dir, which also reads it, wins over the file)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {p}") from exc
        except IsADirectoryError as exc:
            raise ConfigError(f"{p} is a directory, not a config file") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}), so not a TOML config file") from exc
        except OSError as exc:  # unreadable (permissions, I/O): said in one line, not a traceback
            raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: {exc}") from exc
    try:
        settings: Settings = _build(Settings, data, "")
        validate(settings)
    except ConfigError as exc:
        # The file is named, so that an administrator with several configurations knows which one.
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from exc
    env_dir = os.environ.get("MAILMOAT_DATA_DIR")
    if env_dir and "data_dir" not in data:
        settings.data_dir = env_dir
    return settings


def _one_of(value: str, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _at_least(value: float, least: float, where: str, why: str = "") -> None:
    if value < least:
        raise ConfigError(f"{where}: must be at least {least:g}, not {value}{why}")


def _networks(entries: list[str], where: str) -> None:
    import ipaddress

    for e in entries:
        try:
            ipaddress.ip_network(e.strip(), strict=False)
        except ValueError as exc:
            raise ConfigError(f"{where}: {e!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from exc


def _hostport(value: str, where: str) -> None:
    try:
        parse_hostport(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc} (expected HOST:PORT, port 0-65535)") from exc


def validate(settings: Settings) -> None:
    """Refuse a value that cannot work, naming the setting and what is allowed.

    Called by `load`, so that `check`, `serve` and every other command refuse the same file in the
    same words at start-up; without it, `serve` took such a value and failed later (a worker's
    traceback, every message refused with 552, a recall that could not run). Only what needs no
    network and no analyzer is checked here: symbol names are `check_policy`'s, the services
    `mailmoat check`'s."""
    if settings.db:
        from sqlalchemy.engine import make_url

        try:
            make_url(settings.db).get_dialect()
        except Exception as exc:  # ArgumentError (not a URL), NoSuchModuleError (unknown database)
            # The URL itself is not repeated: it may hold a password.
            raise ConfigError(
                "db: not a database URL SQLAlchemy knows "
                "(e.g. postgresql://user:password@host/mailmoat or sqlite:////var/lib/mailmoat/mailmoat.db)"
            ) from exc
    srv = settings.server
    _hostport(srv.listen, "server.listen")
    if srv.internal_listen:
        _hostport(srv.internal_listen, "server.internal_listen")
    if srv.web and srv.web != "off":
        _hostport(srv.web, "server.web")
    if settings.tasks.health_listen:
        _hostport(settings.tasks.health_listen, "tasks.health_listen")
    if not [d for d in srv.domains if d.strip()]:
        raise ConfigError("server.domains: empty; at least one protected domain is needed")
    _networks(srv.relay_networks, "server.relay_networks")
    _at_least(srv.workers, 0, "server.workers", " (0: in the listener's process)")
    _at_least(srv.max_message_size, 1, "server.max_message_size", ": every message would be refused")
    _at_least(srv.max_recipients, 1, "server.max_recipients", ": every message would be refused")
    _at_least(srv.max_connections_per_ip, 1, "server.max_connections_per_ip", ": every connection would be refused")
    if settings.delivery.relay_to:
        from mailmoat.deliver.relay import RelayConfigError, RelayTarget

        try:
            RelayTarget.parse(settings.delivery.relay_to)
        except RelayConfigError as exc:
            raise ConfigError(f"delivery.relay_to: {exc} (smtp://HOST:PORT, lmtp://HOST:PORT or lmtp:///socket)") from exc
    pol = settings.policy
    _one_of(pol.analyzer_failure, ("score", "tempfail"), "policy.analyzer_failure")
    _networks(pol.allow_ips, "policy.allow_ips")
    _networks(pol.deny_ips, "policy.deny_ips")
    from mailmoat.policy.composite import CompositeSyntaxError, compile_composite

    for name, spec in pol.composites.items():
        expr = spec.get("expr") if isinstance(spec, dict) else None
        if isinstance(expr, str):  # the rest of a composite's table is the policy's to check
            try:
                compile_composite(expr)
            except CompositeSyntaxError as exc:
                raise ConfigError(f"policy.composites.{name}: {exc}") from exc
    clam = settings.attachments.clamav
    _one_of(clam.on_failure, ("score", "tempfail"), "attachments.clamav.on_failure")
    _one_of(clam.scan, ("attachments", "message", "both"), "attachments.clamav.scan")
    rec = settings.recall
    _one_of(rec.backend, ("maildir", "imap", "doveadm"), "recall.backend")
    _one_of(rec.mode, ("move", "delete"), "recall.mode")
    _one_of(rec.auto, ("automatic", "approval", "off"), "recall.auto")
    _one_of(rec.imap.auth, ("master", "plain"), "recall.imap.auth")
    _one_of(settings.accounts.containment, ("automatic", "approval", "alert"), "accounts.containment")
    _one_of(settings.blobs.backend, ("file", "postgres"), "blobs.backend")


def check_policy(settings: Settings) -> None:
    """Refuse `[policy]` settings the scoring policy cannot be built from (unknown symbol names
    among them), as a worker would at its start. Separate from `validate`: the symbol table needs
    every analyzer imported and the site rules read (about a second), which only the commands that
    scan mail need; `check` and `serve` call it."""
    from mailmoat.analyzers import registry
    from mailmoat.analyzers.runner import ANALYZER_FAILED
    from mailmoat.policy import Policy

    try:
        symbols = registry.all_symbols(registry.analyzer_classes(), extra=[ANALYZER_FAILED], settings=settings)
        Policy(settings.policy, symbols)
    except (ValueError, RuntimeError) as exc:  # PolicyError, RegistryError
        raise ConfigError(str(exc)) from exc


def _thresholds_out_of_order(values: dict[str, Any], where: str) -> list[str]:
    tag, quarantine, reject = (float(values[k]) for k in ("tag", "quarantine", "reject"))
    if tag <= quarantine <= reject:
        return []
    return [f"{where}: tag {tag:g}, quarantine {quarantine:g}, reject {reject:g} are not in rising order: "
            "the strictest action reached wins, so a threshold set above a stricter one never applies"]


def warnings(settings: Settings) -> list[str]:
    """Values that can work but are probably a mistake, as "setting: why": `mailmoat check` shows
    each as a warning, `serve` logs each once."""
    found: list[str] = []
    if settings.rules.site_dir and not Path(settings.rules.site_dir).is_dir():
        found.append(f"rules.site_dir: {settings.rules.site_dir} is not a directory: only the built-in rules run")
    for d in settings.intel.dirs:
        if not Path(d).exists():
            found.append(f"intel.dirs: {d} does not exist: no indicators are loaded from it")
    if settings.attachments.yara_dir and not Path(settings.attachments.yara_dir).is_dir():
        found.append(f"attachments.yara_dir: {settings.attachments.yara_dir} is not a directory: no YARA rules run")
    base = dataclasses.asdict(settings.policy.thresholds)
    found += _thresholds_out_of_order(base, "policy.thresholds")
    # A direction's or domain's thresholds are layered over the base ones (policy.decide._layer).
    for kind, table in (("direction", settings.policy.direction), ("domain", settings.policy.domain)):
        for name, value in table.items():
            layered = value.get("thresholds") if isinstance(value, dict) else None
            if isinstance(layered, dict):
                # Not numbers: the policy refuses those (check_policy).
                with contextlib.suppress(TypeError, ValueError):
                    found += _thresholds_out_of_order({**base, **layered}, f"policy.{kind}.{name}.thresholds")
    return found


def parse_hostport(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' → (host, port), with a clear error."""
    v = value.strip()
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port_s = rest.lstrip(":")
    else:
        host, _, port_s = v.rpartition(":")
    try:
        port = int(port_s)
    except ValueError as exc:
        raise ConfigError(f"expected HOST:PORT, got {value!r}") from exc
    if not 0 <= port <= 65535:
        raise ConfigError(f"port out of range in {value!r}")
    return (host or default_host), port
