"""Images and the cid map: lying types, cid parts marked as attachments, data: URIs, layout order."""

from __future__ import annotations

import base64
from pathlib import Path

from mailmoat.parse import parse
from mailmoat.parse.images import decode_data_uri

SAMPLES = Path(__file__).parent / "samples"
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def test_cid_parts_whatever_they_declare_in_layout_order() -> None:
    m = parse((SAMPLES / "parse_cid_lying.eml").read_bytes())
    assert m.cid_map == {"bg@x": "4", "tile1@x": "2", "tile2@x": "3"}
    tile1 = m.part("2")
    assert tile1 is not None and tile1.content_type == "application/octet-stream" and tile1.true_type == "image/png"
    assert tile1.disposition == "attachment"
    assert [(i.source, i.part_path or "data") for i in m.images] == [
        ("cid", "4"),  # CSS background in <style>, first in the document
        ("cid", "2"),
        ("cid", "3"),  # declared text/plain
        ("data-uri", "1"),
    ]
    orders = [i.order for i in m.images]
    assert orders == sorted(orders) and len(set(orders)) == 4
    assert m.images[1].origin["width"] == "100" and m.images[1].origin["declared_type"] == "application/octet-stream"
    assert m.images[3].data == GIF


def test_unreferenced_images_and_unresolved_cid() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/html\n\n<img src='cid:missing@x'><img src='cid:missing@x'>"
        b"<div style=\"background:url(data:image/gif;base64," + base64.b64encode(GIF) + b")\">x</div>\n"
        b"--b\nContent-Type: image/gif; name=a.gif\nContent-Disposition: attachment; filename=a.gif\n"
        b"Content-Transfer-Encoding: base64\n\n" + base64.b64encode(GIF) + b"\n"
        b"--b\nContent-Type: application/octet-stream\nContent-Disposition: inline\n"
        b"Content-Transfer-Encoding: base64\n\n" + base64.b64encode(GIF) + b"\n"
        b"--b\nContent-Type: application/zip; name=z.zip\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(b"PK\x05\x06" + b"\0" * 18)
        + b"\n--b--\n"
    )
    m = parse(raw)
    assert [(i.source, i.part_path) for i in m.images] == [("css", "1"), ("attachment", "2"), ("inline", "3")]
    assert m.defects.count("html:unresolved-cid missing@x") == 1
    assert m.cid_map == {}


def test_cid_lookup_tolerates_case_and_percent_encoding() -> None:
    raw = (
        b"Content-Type: multipart/related; boundary=b\n\n"
        b"--b\nContent-Type: text/html\n\n<img src='cid:Logo%40Example'>\n"
        b"--b\nContent-Type: image/gif\nContent-ID: <logo@example>\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(GIF)
        + b"\n--b--\n"
    )
    m = parse(raw)
    assert m.cid_map == {"Logo@Example": "2"} and m.images[0].source == "cid"


def test_data_uri_decoding() -> None:
    assert decode_data_uri("data:image/gif;base64," + base64.b64encode(GIF).decode()) == ("image/gif", GIF)
    assert decode_data_uri("data:,hello%20world") == ("", b"hello world")
    assert decode_data_uri("data:image/png;base64") == ("", b"")
    assert decode_data_uri("data:image/png;base64,!!!!")[1] == b""
