"""HTML bodies with lexbor: visible text, current thread, links with anchor text, image references, CSS urls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape as _html_unescape
from typing import Any
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

MAX_HTML_CHARS = 4 * 1024 * 1024
MAX_ANCHOR = 500

# A newline before block-level tags so text from <td>a</td><td>b</td> does not run together.
_BLOCK_TAG = re.compile(
    r"<(?=/?(?:br|p|div|tr|td|th|li|ul|ol|h[1-6]|table|tbody|blockquote|section|article|header|footer|center|hr|dd|dt|pre|address|form)\b)",
    re.I,
)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.I)
_META_URL = re.compile(r"""url\s*=\s*['"]?([^'";\s]+)""", re.I)
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)|opacity\s*:\s*0(?:\.0+)?\s*(?:;|!|$)", re.I
)
# The number is bounded: a style of thousands of digits must not be tried from every one of them.
_FONT_SIZE = re.compile(
    r"font-size\s*:\s*(?:([\d.]{1,80}(?:e[+-]?\d{1,3})?)\s*([a-z%]{0,4})|((?:x{1,3}-)?(?:small|large)|medium)\b)",
    re.I,
)
# About how many pixels one of each unit is (a viewport unit: 1% of a 1,000-pixel window). A
# number without a unit is read as pixels, as browsers do in the quirks mode most mail is shown
# in. em, rem and % are counted against the usual 16-pixel text.
_PX_PER_UNIT = {
    "": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 37.8, "mm": 3.78, "q": 0.945,
    "vw": 10.0, "vh": 10.0, "vmin": 10.0, "vmax": 10.0, "rem": 16.0, "em": 16.0, "ex": 8.0, "ch": 8.0, "%": 0.16,
}
# Units whose size scales with the parent's: em or % of a zero-size parent stay zero.
_RELATIVE_UNITS = frozenset({"em", "ex", "ch", "%"})
# Text smaller than a pixel is drawn as nothing: "0.00000000000000000000000000000097056vw" hides
# words as well as 0 does.
_VISIBLE_PX = 1.0
MAX_SPLIT_WORDS = 100  # words split by hidden text counted at most: the evidence needs no more
_ZERO_BOX = re.compile(r"(?:^|[;\s])(?:max-)?(?:height|width)\s*:\s*0(?:px|pt|em|%)?\s*(?:;|!|$)", re.I)
_ZERO_HEIGHT = re.compile(r"(?:^|[;\s])(?:max-)?height\s*:\s*0(?:px|pt|em|%)?\s*(?:;|!|$)", re.I)
_ZERO_WIDTH = re.compile(r"(?:^|[;\s])(?:max-)?width\s*:\s*0(?:px|pt|em|%)?\s*(?:;|!|$)", re.I)
_OVERFLOW_HIDDEN = re.compile(r"overflow\s*:\s*hidden", re.I)
_INVISIBLE = re.compile(r"[\u00ad\u034f\u200b-\u200d\u2060\u2061-\u2064\ufeff\u180e]")
QUOTE_MARK = "\ue000"
_DEPTH_WORK = 30_000_000  # stack-scan steps allowed (about 50 ms of lexbor time)
_NON_NESTING = ("<br", "<img", "<meta", "<input", "<hr", "<link", "<wbr", "<col", "<area", "<source", "<p", "<li",
                "<td", "<tr", "<th", "<option", "<dd", "<dt", "<a ")
_RAW_OPEN = re.compile(r"<(script|style|title|head)\b", re.I)
_RAW_CLOSE = {name: re.compile(f"</{name}", re.I) for name in ("script", "style", "title", "head")}
# "<" ends a tag too: with only "[^>]", a run of "<" without ">" was read to its end from every "<".
_TAG = re.compile(r"<[^<>]*>")
_ATTR_URL = re.compile(r"""\b(href|action|src|background)\s*=\s*["']?([^"'\s>]+)""", re.I)
_QUOTE_SELECTOR = (
    "blockquote, div.gmail_quote, div.yahoo_quoted, #divRplyFwdMsg, #appendonsend, div.moz-cite-prefix, "
    "div[id^=mail-editor-reference-message]"
)
_SRC_SELECTOR = (
    "iframe[src], frame[src], script[src], embed[src], object[data], link[href], video[src], audio[src], "
    "source[src], input[src]"
)
_FORM_SELECTOR = "form[action], button[formaction], input[formaction]"
_IMAGE_SELECTOR = "img, image, input[type=image], video[poster], style, [style], [background]"


@dataclass
class ImageRef:
    """One place in the HTML that shows an image, in document order."""

    ref: str  # src as written: "cid:...", "data:...", "http..."
    kind: str  # "img", "css", "background"
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class HtmlInfo:
    text: str = ""
    current: str | None = None  # visible text before the first quoted reply; None when nothing is quoted
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (url, source, anchor text)
    images: list[ImageRef] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    hidden_in_words: int = 0  # hidden elements with text that sit between two letters of a word


def clean_text(text: str) -> str:
    """Visible text normalised: invisible characters dropped, blanks collapsed, one line per block."""
    if _INVISIBLE.search(text):
        text = _INVISIBLE.sub("", text)
    # str.split/join run in C; the equivalent regex substitutions cost four times more
    return "\n".join(joined for line in text.splitlines() if (joined := " ".join(line.split())))


def _font_size(style: str) -> str:
    """What the last font-size declaration of a style does to text: "zero" (less than a pixel),
    "sized" (a size of its own, in absolute units or a keyword), "relative" (em or % of the
    parent's) or ""."""
    found = _FONT_SIZE.findall(style)
    if not found:
        return ""
    number, unit, keyword = found[-1]  # the last declaration is the one that applies
    if keyword:
        return "sized"
    unit = unit.lower()
    try:
        px = float(number) * _PX_PER_UNIT[unit]
    except (ValueError, KeyError):
        return ""  # a size no browser reads: the declaration is dropped
    if px < _VISIBLE_PX:
        return "zero"
    return "relative" if unit in _RELATIVE_UNITS else "sized"


def _is_hidden(node: LexborNode, style: str | None) -> str:
    """How an element hides text: "all" (itself and everything in it), "font" (a font size of
    zero, which its descendants may undo by sizing their own text) or ""."""
    low = style.lower() if style else ""
    if low:
        # substring tests first: most styles hide nothing and regexes cost more than `in`
        if ("none" in low or "hidden" in low or "collapse" in low or "opacity" in low) and _HIDDEN_STYLE.search(low):
            return "all"
        if (
            (("height" in low and "width" in low) or "overflow" in low)
            and _ZERO_BOX.search(low)
            and (_OVERFLOW_HIDDEN.search(low) or (_ZERO_HEIGHT.search(low) and _ZERO_WIDTH.search(low)))
        ):
            return "all"
    if "hidden" in node.attributes:
        return "all"
    return "font" if "font-size" in low and _font_size(low) == "zero" else ""


def _sizes_own_text(node: LexborNode) -> bool:
    """True when an element gives its text a size of its own (absolute units, a keyword, or the
    old `<font size=N>`), so that a zero-size ancestor no longer hides it."""
    low = (node.attributes.get("style") or "").lower()
    if "font-size" in low and _font_size(low) == "sized":
        return True
    size = node.attributes.get("size") if node.tag == "font" else None
    return bool(size and size.strip().lstrip("+-").isdigit() and size.strip() not in ("0", "+0", "-0"))


def _splits_a_word(node: LexborNode) -> bool:
    """True when a hidden element that holds something stands between two letters: the word
    the reader sees whole ("de<span style='font-size:0'>Eliette</span>vice") reads as salad to a
    filter that counts hidden text. Mail templates hide whole blocks (a preview line, a
    column for phones), never the inside of a word."""
    before, after = node.prev, node.next
    if before is None or after is None or before.tag != "-text" or after.tag != "-text":
        return False
    left, right = before.text_content or "", after.text_content or ""
    # Whether it holds anything is all that is asked: reading its text would cost a walk of
    # everything inside it, for each of thousands of nested ones.
    return left[-1:].isalpha() and right[:1].isalpha() and node.child is not None


def _zero_font_text(nodes: list[LexborNode]) -> list[LexborNode]:
    """The text that elements of font size zero hide: every text node inside them that no
    descendant gives a size of its own again.

    Mail templates (MJML and most builders) set `font-size:0` on a table cell to close the gaps
    between its inline columns, and size the text inside each column: that text is what the
    reader sees. Text left at size zero is what a spammer hides. Each element is walked once,
    however the zero-size ones nest."""
    out: list[LexborNode] = []
    seen: set[int] = set()
    for node in nodes:
        if node.mem_id in seen:
            continue
        stack = [node]
        while stack:
            current = stack.pop()
            seen.add(current.mem_id)
            for child in current.iter(include_text=True):
                if child.tag == "-text":
                    out.append(child)
                elif child.tag and not child.tag.startswith(("-", "_")) and not _sizes_own_text(child):
                    stack.append(child)
    return out


def _top_level(nodes: list[LexborNode]) -> list[LexborNode]:
    """Nodes not inside another node of the list (removing a node frees its descendants).

    What is known of an ancestor is kept, so that thousands of nodes under one deep chain of
    elements cost one walk up that chain, not one each."""
    if len(nodes) < 2:
        return nodes
    ids = {n.mem_id for n in nodes}
    covered: dict[int, bool] = {}  # element -> it or one of its ancestors is in the list

    def is_covered(node: LexborNode | None) -> bool:
        path: list[int] = []
        found = False
        while node is not None:
            key = node.mem_id
            if key in covered:
                found = covered[key]
                break
            if key in ids:
                found = True
                covered[key] = True
                break
            path.append(key)
            node = node.parent
        for key in path:
            covered[key] = found
        return found

    return [n for n in nodes if not is_covered(n.parent)]


def _attr(node: LexborNode, name: str) -> str:
    value = node.attributes.get(name)
    return value.strip() if value else ""


def _css_urls(css: str) -> list[str]:
    if "rl(" not in css and "RL(" not in css:
        return []
    return [a or b or c for a, b, c in _CSS_URL.findall(css) if (a or b or c)]


def _too_deep(html: str) -> bool:
    """True when tree construction could go quadratic: block tags each scan a stack of unclosed elements.

    lexbor (like every HTML5 parser) checks the open-element stack for a <p> on each block start
    tag, so 200,000 unclosed <div>s cost minutes. Bound (start tags) x (unclosed tags) cheaply.
    """
    closes = html.count("</")
    starts = html.count("<") - closes
    if starts * max(starts - closes, 0) <= _DEPTH_WORK:
        return False
    low = html.lower()
    starts = low.count("<") - low.count("</") - low.count("<!")
    unclosed = starts - low.count("</") - sum(low.count(t) for t in _NON_NESTING)
    return starts * max(unclosed, 0) > _DEPTH_WORK


def _drop_raw_blocks(html: str) -> str:
    """Blank out script, style, title and head blocks; an unclosed one is kept as text.

    One pass: a regex with a lazy ".*?" up to the closing tag was tried again from every unclosed
    "<head", reading to the end each time (5.6 s for 80 KB of "<head").
    """
    out: list[str] = []
    pos = 0
    unclosed: set[str] = set()  # no closing tag after some point means none after any later one
    search_from = 0
    while m := _RAW_OPEN.search(html, search_from):
        name = m.group(1).lower()
        closing = None if name in unclosed else _RAW_CLOSE[name].search(html, m.end())
        end = html.find(">", closing.end()) if closing else -1
        if end == -1:
            unclosed.add(name)
            search_from = m.end()
            continue
        out.append(html[pos : m.start()])
        out.append(" ")
        pos = search_from = end + 1
    out.append(html[pos:])
    return "".join(out)


def _flat(html: str, info: HtmlInfo) -> HtmlInfo:
    """Regex reading of an HTML document too hostile for a tree: text, links and image references."""
    info.defects.append("html:too-deep")
    body = _drop_raw_blocks(html)
    info.text = clean_text(_html_unescape(_TAG.sub(" ", body)))
    for attr, value in _ATTR_URL.findall(body):
        value = value.strip()
        attr = attr.lower()
        if value.startswith(("cid:", "data:")):
            if attr in ("src", "background"):
                info.images.append(ImageRef(value, "img"))
        elif value and not value.startswith("#"):
            info.links.append((value, {"href": "href", "action": "form"}.get(attr, "src"), ""))
    return info


def analyse(html: str) -> HtmlInfo:
    """Everything parse needs from one HTML document; raises only on parser failure (caller records it)."""
    info = HtmlInfo()
    if len(html) > MAX_HTML_CHARS:
        info.defects.append(f"limit:html-size {len(html)}")
        html = html[:MAX_HTML_CHARS]
    if _too_deep(html):
        return _flat(html, info)
    tree = LexborHTMLParser(_BLOCK_TAG.sub("\n<", html))
    base = ""
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = _attr(base_node, "href")

    def resolve(url: str) -> str:
        if base and url and ":" not in url.split("/", 1)[0]:
            try:
                return urljoin(base, url)
            except ValueError:
                return url
        return url

    for node in tree.css("a[href], area[href]"):
        href = _attr(node, "href")
        if not href or href.startswith("#"):
            continue
        anchor = clean_text(node.text(deep=True))[:MAX_ANCHOR]
        if not anchor:
            img = node.css_first("img[alt]")
            if img is not None:
                anchor = clean_text(img.attributes.get("alt") or "")[:MAX_ANCHOR]
        info.links.append((resolve(href), "href", anchor))
    for node in tree.css(_FORM_SELECTOR):
        target = _attr(node, "action") or _attr(node, "formaction")
        if target:
            info.links.append((resolve(target), "form", ""))
    for node in tree.css("meta[http-equiv]"):
        if _attr(node, "http-equiv").lower() == "refresh":
            m = _META_URL.search(_attr(node, "content"))
            if m:
                info.links.append((resolve(m.group(1)), "meta", ""))
    for node in tree.css(_SRC_SELECTOR):
        target = _attr(node, "src") or _attr(node, "data") or _attr(node, "href")
        if target and not target.startswith(("data:", "cid:")):
            info.links.append((resolve(target), "src", ""))

    hidden: list[LexborNode] = []
    zero_font: list[LexborNode] = []
    for node in tree.css(_IMAGE_SELECTOR):
        tag = node.tag
        if tag == "style":
            for u in _css_urls(node.text(deep=True)):
                info.images.append(ImageRef(u, "css"))
            continue
        attrs = node.attributes
        if tag == "img" or tag == "input":
            src = (attrs.get("src") or "").strip()
            if src:
                extra = {k: v for k in ("width", "height", "alt") if (v := attrs.get(k))}
                info.images.append(ImageRef(src, "img", extra))
        elif tag == "image":
            src = (attrs.get("href") or attrs.get("xlink:href") or "").strip()
            if src:
                info.images.append(ImageRef(src, "img"))
        elif tag == "video":
            poster = (attrs.get("poster") or "").strip()
            if poster:
                info.images.append(ImageRef(poster, "img"))
        background = attrs.get("background")
        if background and background.strip():
            info.images.append(ImageRef(background.strip(), "background"))
        style = attrs.get("style")
        if style:
            for u in _css_urls(style):
                info.images.append(ImageRef(u, "css"))
        if style or "hidden" in attrs:
            how = _is_hidden(node, style)
            if how == "all":
                hidden.append(node)
            elif how == "font":
                zero_font.append(node)
    for ref in info.images:
        if not ref.ref.startswith(("data:", "cid:")):
            info.links.append((resolve(ref.ref), "css" if ref.kind == "css" else "src", ""))

    # Visible text: hidden elements, then scripts and styles, go before the text is read.
    seen = {n.mem_id for n in hidden}
    for node in tree.css("[hidden]"):
        if node.mem_id not in seen:
            hidden.append(node)
    for node in hidden + zero_font:
        if info.hidden_in_words >= MAX_SPLIT_WORDS:
            break
        info.hidden_in_words += _splits_a_word(node)
    # Text first: a hidden element may hold a zero-size one, whose text nodes must not be freed twice.
    for text_node in _zero_font_text(zero_font):
        text_node.decompose()
    for node in _top_level(hidden):
        node.decompose()
    tree.strip_tags(["script", "style", "template", "title", "head", "xmp", "noembed", "noframes", "iframe", "object"])
    quotes = tree.css(_QUOTE_SELECTOR)
    for node in _top_level(quotes):
        node.insert_before(QUOTE_MARK)
    root = tree.body or tree.root
    text = root.text(deep=True) if root is not None else ""
    if quotes and QUOTE_MARK in text:
        info.current = clean_text(text.split(QUOTE_MARK, 1)[0])
        text = text.replace(QUOTE_MARK, "")
    info.text = clean_text(text)
    return info


def meta_charset(data: bytes) -> str | None:
    """The charset an HTML document declares in its first bytes (<meta charset> or http-equiv)."""
    m = _META_CHARSET.search(data[:4096])
    return m.group(1).decode("ascii", "replace") if m else None


_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]{1,40})""", re.I)


def attrs_summary(ref: ImageRef, index: int) -> dict[str, Any]:
    """Image.origin for an image shown by the HTML: where in the layout and how it was sized."""
    origin: dict[str, Any] = {"html_index": index, "ref_kind": ref.kind}
    origin.update(ref.attrs)
    return origin
