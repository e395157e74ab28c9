"""SVG images rasterised for the QR decoder (resvg), with limits, and no file or network access.

Phishing kits draw QR codes as SVG — an attached .svg, a `cid:` or `data:` image, or an <svg>
element in the HTML body — because an SVG is text to most filters and no bitmap to a QR scanner.
resvg renders them the way a browser or mail client would; the decoder then reads the bitmap.
"""

from __future__ import annotations

import io
import os
import re
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import resvg_py
from PIL import Image as PILImage

from mailmoat.parse.qr_decode import NotACode

# Larger SVGs are not rendered (a QR code drawn as SVG is a few KB to a few hundred KB).
MAX_SVG_BYTES = 2 * 1024 * 1024
# The render's longer side: 2.5 px per module even for the largest QR code (177 + 8 modules),
# which zxing-cpp reads; rendering costs grow with the pixels (5-7 ms at this size).
RENDER_SIDE = 480
MIN_RENDER_SIDE = 64
# An SVG shown smaller than this (width and height in px) is an icon: a 21-module code needs more
# than 2 px per module on screen for a phone camera to read it.
MIN_SHOWN_SIDE = 48
MAX_INLINE_SVGS = 20

_SVG_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype[^\[>]*(?:\[.*?\])?\s*>\s*)?(?:<!--.*?-->\s*)*<svg\b",
    re.I | re.S,
)
_ROOT = re.compile(r"<svg\b([^>]*)>", re.I | re.S)
_ATTR = re.compile(r"""\b(width|height|viewBox)\s*=\s*["']([^"']*)["']""", re.I)
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(px)?\s*$")
# References to anything outside the SVG (files, URLs) are removed before rendering: an image
# element, a filter image or a `use` pointing elsewhere; `data:` and in-document `#id` stay.
# Only the opening tag goes (a dangling closing tag is harmless), so an unclosed element cannot
# slip through.
_EXTERNAL = re.compile(
    r"""<(?:image|feImage|use)\b[^>]*?\b(?:xlink:)?href\s*=\s*["'](?!data:|#)[^"']*["'][^>]*>""",
    re.I | re.S,
)
_STYLE_IMPORT = re.compile(r"@import[^;]*;?|url\(\s*['\"]?(?!data:|#)[^)]*\)", re.I)
# resvg recurses through nested elements and chains of references; past a few hundred levels it
# overflows its stack and the whole process dies (measured: depth 400 in an 8 MB thread). Codes
# drawn as SVG are flat; the limits leave room for padding an attacker might add to dodge a lower
# one, and renders run in one thread whose stack holds the worst case they allow.
MAX_DEPTH = 256
MAX_REF_CHAIN = 16
MAX_STYLE_REFS = 8
# 256 x 16 levels at about 27 KB each is 110 MB: the stack is reserved, not used, until needed.
RENDER_STACK = 512 * 1024 * 1024
_REF = re.compile(r"#([\w.\-:]+)")


_renderers: dict[int, ThreadPoolExecutor] = {}
_renderers_lock = threading.Lock()


def _renderer() -> ThreadPoolExecutor:
    """This process's render thread (made on first use: a thread does not survive fork)."""
    pid = os.getpid()
    with _renderers_lock:
        pool = _renderers.get(pid)
        if pool is None:
            old = threading.stack_size(RENDER_STACK)
            try:
                pool = ThreadPoolExecutor(1, thread_name_prefix="svg-render")
                pool.submit(lambda: None).result()  # the thread starts now, with the large stack
            finally:
                threading.stack_size(old)
            _renderers.clear()
            _renderers[pid] = pool
        return pool
_HAS_SVG = re.compile(r"<svg\b", re.I)
_XML_NAME = re.compile(r"^[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?$")
# HTML larger than this is not searched for <svg> drawings.
MAX_HTML = 2_000_000


def looks_like_svg(data: bytes) -> bool:
    """An SVG document (optionally after an XML declaration, comments and a doctype)."""
    return bool(_SVG_START.match(data[:4096]))


def inline_svgs(html: str) -> list[str | ValueError]:
    """The <svg> elements drawn in an HTML document, in order, as SVG documents (at most MAX_INLINE_SVGS).

    A browser reads inline SVG with the HTML parser: namespaces implied, attribute case fixed,
    broken attributes dropped. resvg wants XML, so each element is parsed the browser's way
    (lexbor) and written out again as well-formed SVG.
    """
    if not _HAS_SVG.search(html):
        return []
    from selectolax.lexbor import LexborHTMLParser

    out: list[str | ValueError] = []
    for node in LexborHTMLParser(html[:MAX_HTML]).css("svg"):
        if _inside_svg(node):
            continue  # drawn as part of its outer <svg>
        try:
            out.append(_to_xml(node))
        except ValueError as exc:  # reported as a defect of this drawing, never a crash
            out.append(exc)
        if len(out) >= MAX_INLINE_SVGS:
            break
    return out


def _inside_svg(node: Any) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == "svg":
            return True
        parent = parent.parent
    return False


def _to_xml(svg: Any) -> str:
    parts: list[str] = []
    budget = [MAX_SVG_BYTES]

    def attrs(node: Any, root: bool) -> str:
        items = {k: v for k, v in node.attributes.items() if _XML_NAME.match(k) and not k.startswith("xmlns")}
        if root:
            items["xmlns"] = "http://www.w3.org/2000/svg"
            items["xmlns:xlink"] = "http://www.w3.org/1999/xlink"
        return "".join(f' {k}="{xml_escape(v or "", {chr(34): "&quot;"})}"' for k, v in items.items())

    def walk(node: Any, depth: int, root: bool = False) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(f"SVG nested deeper than {MAX_DEPTH}")
        if budget[0] <= 0:
            return
        if node.tag == "-text":
            text = xml_escape(node.text_content or "")
            budget[0] -= len(text)
            parts.append(text)
            return
        if not _XML_NAME.match(node.tag or "") or node.tag.startswith("-"):
            return  # comments and anything without a usable name
        opening = f"<{node.tag}{attrs(node, root)}>"
        budget[0] -= len(opening)
        parts.append(opening)
        child = node.child
        while child is not None:
            walk(child, depth + 1)
            child = child.next
        parts.append(f"</{node.tag}>")

    walk(svg, 1, root=True)
    return "".join(parts)


def _length(value: str) -> float | None:
    m = _NUMBER.match(value)
    return float(m.group(1)) if m else None


def _root_attrs(svg: str) -> dict[str, str] | None:
    root = _ROOT.search(svg[:8192])
    return {k.lower(): v for k, v in _ATTR.findall(root.group(1))} if root else None


def displayed_size(svg: str) -> tuple[float, float] | None:
    """The size the root element asks to be shown at, when both width and height are given in px."""
    attrs = _root_attrs(svg)
    if attrs is None:
        return None
    w, h = _length(attrs.get("width", "")), _length(attrs.get("height", ""))
    return (w, h) if w and h else None


def intrinsic_size(svg: str) -> tuple[float, float] | None:
    """Width and height from the root element (width/height in px, else the viewBox), if given."""
    shown = displayed_size(svg)
    if shown is not None:
        return shown
    attrs = _root_attrs(svg) or {}
    box = attrs.get("viewbox", "").replace(",", " ").split()
    if len(box) == 4:
        try:
            bw, bh = float(box[2]), float(box[3])
        except ValueError:
            return None
        if bw > 0 and bh > 0:
            return bw, bh
    return None


def render_size(svg: str, max_pixels: int) -> tuple[int, int]:
    """Target size: the longer side RENDER_SIDE, the aspect kept, never above max_pixels."""
    size = intrinsic_size(svg)
    if size is None:
        return RENDER_SIDE, RENDER_SIDE
    w, h = size
    scale = RENDER_SIDE / max(w, h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    if tw * th > max_pixels:
        shrink = (max_pixels / (tw * th)) ** 0.5
        tw, th = max(1, int(tw * shrink)), max(1, int(th * shrink))
    return tw, th


def sanitise(svg: str) -> str:
    """The SVG without references to files or URLs (so rendering reads nothing but the SVG)."""
    return _STYLE_IMPORT.sub("", _EXTERNAL.sub("", svg))


def render_svg(data: bytes | str, max_pixels: int, icon_gate: bool = False) -> PILImage.Image:
    """The SVG as a bitmap on white, sized for decoding.

    NotACode for shapes that cannot hold a code; ValueError when it cannot be rendered.
    """
    if len(data) > MAX_SVG_BYTES:
        raise ValueError(f"SVG of {len(data)} bytes exceeds {MAX_SVG_BYTES}")
    svg = data if isinstance(data, str) else data.decode("utf-8", "replace")
    svg = sanitise(svg)
    # Only for <svg> drawn in a page: an attached SVG file is opened on its own and can be zoomed.
    shown = displayed_size(svg) if icon_gate else None
    if shown is not None and min(shown) < MIN_SHOWN_SIDE:
        raise NotACode(f"SVG shown at {shown[0]:g}x{shown[1]:g} px")  # an icon: no phone reads a code that small
    width, height = render_size(svg, max_pixels)
    if min(width, height) < MIN_RENDER_SIDE:
        raise NotACode(f"SVG shape {width}x{height}")  # a banner or a rule, not a code
    check_structure(svg)
    png = _renderer().submit(_render, svg, width, height).result()
    img = PILImage.open(io.BytesIO(png))
    img.load()
    return img


def _render(svg: str, width: int, height: int) -> bytes:
    try:
        return bytes(
            resvg_py.svg_to_bytes(
                svg_string=svg,
                width=width,
                height=height,
                background="#ffffff",
                skip_system_fonts=True,  # loading fonts costs more than the render; codes have no text
                shape_rendering="crisp_edges",
            )
        )
    except BaseException as exc:
        # A Rust panic arrives as pyo3's PanicException, a BaseException: it is bad input, not a
        # reason to stop the process.
        if type(exc).__name__ != "PanicException":
            raise
        raise ValueError(f"renderer panicked: {exc}") from None


def check_structure(svg: str) -> None:
    """Refuse what could exhaust the renderer's stack (it recurses and crashes the process, not an
    exception): deep nesting, long chains of references (`use`, `url(#…)`), and DTD entities."""
    if "<!ENTITY" in svg or "<!entity" in svg:
        raise ValueError("SVG declares entities")
    ids: dict[str, int] = {}  # id -> element index
    refs: list[set[str]] = []  # per element: ids referenced by it and by its descendants
    stack: list[int] = []
    depth = 0
    style_refs = 0
    try:
        for event, elem in ET.iterparse(io.StringIO(svg), events=("start", "end")):
            if event == "start":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"SVG nested deeper than {MAX_DEPTH}")
                index = len(refs)
                refs.append(set())
                stack.append(index)
                if elem.get("id"):
                    ids[str(elem.get("id"))] = index
                for value in elem.attrib.values():
                    refs[index].update(_REF.findall(value))
            else:
                depth -= 1
                index = stack.pop()
                if elem.text and "url(" in elem.text:
                    # <style> rules reach paint servers through selectors this check does not
                    # resolve, so any more than a few such references are refused outright.
                    found = _REF.findall(elem.text)
                    style_refs += len(found)
                    if style_refs > MAX_STYLE_REFS:
                        raise ValueError(f"SVG style sheet refers to more than {MAX_STYLE_REFS} paint servers")
                    refs[index].update(found)
                if stack:
                    refs[stack[-1]].update(refs[index])
                elem.clear()
    except ET.ParseError as exc:
        raise ValueError(f"SVG is not well-formed XML: {exc}") from None
    # Longest chain of references, each link an element whose subtree refers to the next.
    memo: dict[int, int] = {}

    def chain(index: int, seen: frozenset[int]) -> int:
        if index in memo:
            return memo[index]
        best = 0
        for name in refs[index]:
            target = ids.get(name)
            if target is None or target in seen:
                continue  # unknown ids and cycles: resvg drops those itself
            best = max(best, 1 + chain(target, seen | {target}))
            if best > MAX_REF_CHAIN:
                raise ValueError(f"SVG references chained deeper than {MAX_REF_CHAIN}")
        memo[index] = best
        return best

    for index in range(len(refs)):
        chain(index, frozenset({index}))


__all__ = ["check_structure", "displayed_size", "inline_svgs", "intrinsic_size", "looks_like_svg", "render_size", "render_svg", "sanitise"]
