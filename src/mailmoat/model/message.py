"""The parsed message model, built once by `mailmoat.parse.parse` and read by every analyzer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Address:
    """A mailbox from a header: display name, address and its (lower-cased) domain."""

    display: str = ""
    addr: str = ""

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2].lower() if "@" in self.addr else ""

    @property
    def local(self) -> str:
        return self.addr.rpartition("@")[0] if "@" in self.addr else self.addr


@dataclass
class ReceivedHop:
    """One Received header, newest first: who handed the message to whom."""

    raw: str
    from_host: str = ""
    helo: str = ""
    ip: str = ""
    by_host: str = ""
    protocol: str = ""
    timestamp: float | None = None


@dataclass
class Part:
    """One MIME leaf (or container) with both what it declares and what its bytes really are."""

    path: str  # "1", "1.2", "2.1.1" — position in the MIME tree
    content_type: str  # declared, lower-case, e.g. "image/png"
    filename: str = ""
    disposition: str = ""  # "inline", "attachment" or ""
    content_id: str = ""  # without angle brackets
    charset: str = ""
    size: int = 0  # decoded bytes
    sha256: str = ""
    true_type: str = ""  # mime type from magic bytes, e.g. "application/zip"; "" if unknown
    true_ext: str = ""  # extension from magic bytes, e.g. "zip"
    payload: bytes = b""  # decoded content (empty for containers or when over limits)
    is_attachment: bool = False
    depth: int = 0
    defects: list[str] = field(default_factory=list)


@dataclass
class Image:
    """An image a mail client could render, with where it came from."""

    data: bytes
    source: str  # "inline", "attachment", "cid", "data-uri", "css", "eml", "pdf", "office", "html-table", "text-blocks", "tiles"
    part_path: str = ""
    content_id: str = ""
    filename: str = ""
    order: int = 0  # position in the HTML layout (for tiles), or part order
    origin: dict[str, Any] = field(default_factory=dict)  # more context (pdf page, table index ...)


@dataclass
class Url:
    """A URL found anywhere in the message, normalised, with its context."""

    url: str
    scheme: str = ""
    host: str = ""
    port: int | None = None
    registrable_domain: str = ""
    source: str = ""  # "text", "href", "src", "form", "meta", "css", "attachment", "qr", "pdf"
    anchor_text: str = ""
    is_ip: bool = False
    is_idn: bool = False
    part_path: str = ""


@dataclass
class QrCode:
    """A decoded barcode and where it was found."""

    payload: str
    symbology: str = "QRCode"
    source: str = ""  # Image.source of the carrier
    part_path: str = ""
    content_id: str = ""
    filename: str = ""
    origin: dict[str, Any] = field(default_factory=dict)


@dataclass
class Document:
    """What a reader sees on opening an attachment: a PDF, an Office file, a text or HTML file, a message."""

    part_path: str
    filename: str
    kind: str  # "pdf", "office" (OOXML, OpenDocument), "rtf", "text", "html", "message" (an attached message: its sender's name, subject and text)
    text: str = ""  # its words, cut at a limit (parse.documents.MAX_TEXT)
    locked: bool = False  # a PDF that opens only with a password
    password: str = ""  # the password from the message body that opened it

    @property
    def label(self) -> str:
        """How evidence names it: the file name, or what it is."""
        return self.filename or ("the attached message" if self.kind == "message" else f"part {self.part_path}")


@dataclass
class Message:
    """Everything analyzers may read about one message; parse never raises, it records defects."""

    raw: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)  # decoded, in order
    subject: str = ""
    from_: Address = field(default_factory=Address)
    reply_to: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    sender: Address | None = None
    return_path: str = ""
    message_id: str = ""
    date: str = ""
    x_mailer: str = ""
    list_headers: dict[str, str] = field(default_factory=dict)
    received: list[ReceivedHop] = field(default_factory=list)
    text: str = ""  # text/plain bodies joined
    html: str = ""  # text/html bodies joined
    html_text: str = ""  # visible text of the HTML
    hidden_in_words: int = 0  # hidden HTML elements that split a visible word ("de<span hidden>salad</span>vice")
    current_thread: str = ""  # body text without quoted replies
    parts: list[Part] = field(default_factory=list)
    cid_map: dict[str, str] = field(default_factory=dict)  # content-id -> part path (referenced ones)
    images: list[Image] = field(default_factory=list)
    urls: list[Url] = field(default_factory=list)
    qr_codes: list[QrCode] = field(default_factory=list)
    attached_messages: list[Message] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)  # attached documents' text, also those of attached messages
    defects: list[str] = field(default_factory=list)

    def header(self, name: str, default: str = "") -> str:
        """First value of a header (case-insensitive)."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def reads_html(self) -> bool:
        """Whether the reader's text is the HTML's: its visible text says more than the plain part.
        A mail client shows the HTML; a sender who writes a one-line plain part ("the HTML did not
        load") and puts the lure in the HTML must not have the filters read the line."""
        return len(self.html_text.strip()) > len(self.text.strip())

    @property
    def body_text(self) -> str:
        """The text a reader sees: the plain text or the visible text of the HTML (`reads_html`)."""
        return self.html_text if self.reads_html else self.text

    @property
    def document_text(self) -> str:
        """The text of every attached document, one after the other."""
        return "\n".join(d.text for d in self.documents if d.text)

    @property
    def attachments(self) -> list[Part]:
        return [p for p in self.parts if p.is_attachment]

    def part(self, path: str) -> Part | None:
        for p in self.parts:
            if p.path == path:
                return p
        return None
