"""Bytes and header text to str: RFC 2047/2231, raw 8-bit, Chinese charsets and mislabelled recovery."""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache

# Real mail labels the superset by the subset's name: GB2312 text routinely carries GBK and
# GB18030 characters, latin-1 labels carry windows-1252 quotes, Big5 carries HKSCS/cp950 extras.
_ALIASES: dict[str, str] = {
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gb2312-80": "gb18030",
    "gb_2312": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "euccn": "gb18030",
    "x-euc-cn": "gb18030",
    "chinese": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "936": "gb18030",
    "gb18030": "gb18030",
    "gb-18030": "gb18030",
    "hz-gb-2312": "hz",
    "big5": "big5hkscs",
    "big-5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "cp950": "cp950",
    "x-x-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "euckr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_2",
    "euc-jp": "euc_jp",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "windows-1252": "cp1252",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
}
# Labels that say nothing: decode by heuristics.
_UNKNOWN = frozenset({"", "unknown-8bit", "x-unknown", "unknown", "default", "charset", "x-user-defined", "none", "8bit"})
# Encodings whose text is pure ASCII bytes: the ASCII fast path would be wrong for them.
_ASCII_ENCODED = ("utf-7", "utf_7", "utf-16", "utf_16", "utf-32", "utf_32", "iso2022", "iso-2022", "hz")
_SINGLE_BYTE = frozenset({"cp1252", "latin-1", "iso8859-15", "iso8859-2", "cp1250", "cp1251", "koi8-r", "cp1253", "cp1254"})
_MULTI_BYTE_CJK = frozenset({"gb18030", "big5hkscs", "cp950", "cp949", "cp932", "euc_jp"})
_UTF8_MULTI = re.compile(rb"[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_VALID_NAME = re.compile(r"^[A-Za-z0-9._:+-]{1,40}$")

# Frequent Chinese characters in both scripts: tells GB bytes from Big5 bytes when nothing is declared.
_COMMON_HAN = frozenset(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里用道行所然家种"
    "事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实日者意无力它与长把机十民第公"
    "此已工使情明性知全三又关点正业外将两高间由问很最重并物手应向头文体美相见被利什二等产或新己制身果加月话合回特代内信表"
    "化老给世位次度门任常先海通教原东声提立及比员解名真论处走义各入几口认条平系气题活更别打女变四总何电数安少报才结反受目"
    "量再感建务做接必场件计管期市直资命金指克许统区保至形社便空决展马科司五基书非则听白却界达光放强即难且权思象完设式色路"
    "记南品住告类求据程北边张该交规万取望觉术领共确传师观清今切院让识候带争运笑风步改收根造言联持组每济车亲极服快办议往元"
    "证近失转令准布始怎存未远单具字爱流备连调深商算质团集百需价花华城级整府离况请技际约示复病息究线似官火断精满支视消器容"
    "照须增研写称企功吗包片查轻易早除找装广显图念引历首医局专费号另周较注语仅考落随选列红响虽推势参希众构房半节土投某案"
    "們這個來為國說時會對過發後裡種經還現當動從問麼開無關點業將兩間頭體見產長機實員義條與東聲認聯號網費請電話書買賣錢貨價"
    "讓識運選聽難離統總務設計處報導術藝導於熱門優惠銷售購訂單驗證帳戶碼郵箱貴您謝"
    "您谢邮箱账户密码验证订单购买优惠销售发票公司客户服务通知登录点击链接免费会员"
)


@lru_cache(maxsize=256)
def normalise_charset(label: str | None) -> str | None:
    """A Python codec name for a MIME charset label; None when unknown or meaningless."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if "=" in name:  # charset="charset="GB2312"" from broken mailers
        name = name.rpartition("=")[2].strip("\"' ")
    if name in _UNKNOWN or not _VALID_NAME.match(name):
        return None
    if name in _ALIASES:
        return _ALIASES[name]
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    # bytes-to-bytes codecs (base64, zlib, rot13 ...) are not charsets
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _han_score(text: str) -> int:
    return sum(1 for ch in text if ch in _COMMON_HAN)


def _cjk_symbol(o: int) -> bool:
    """Punctuation, arrows, box drawing, shapes, stars, kana, Greek and Cyrillic letters and
    vertical forms that GB2312 and Big5 carry beside Han characters: Chinese newsgroup mail
    frames quotes with ☆──☆, lists with ① and draws faces with ︶﹀."""
    return (
        0x2010 <= o <= 0x27BF or 0x3040 <= o <= 0x30FF or 0x391 <= o <= 0x451 or 0xFE30 <= o <= 0xFE4F or o == 0xB7
    )


def _cjk_ratio_ok(text: str) -> bool:
    """True when the non-ASCII characters of text are overwhelmingly Han ideographs (real CJK
    text); the symbols the CJK charsets carry count for neither side."""
    non_ascii = 0
    han = 0
    for ch in text:
        o = ord(ch)
        if o >= 0x80 and not _cjk_symbol(o):
            non_ascii += 1
            if 0x4E00 <= o <= 0x9FFF or 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFFEF:
                han += 1
    return han >= 2 and han >= 0.85 * non_ascii


# A Han character right after an ASCII letter with no Han character after it: what an accented
# letter followed by an ASCII letter ("w\xe1llet", "Fran\xe7ois") becomes when latin-1 bytes are
# read as GB18030 or Big5, both of which take an ASCII letter as a trail byte.
_LONE_HAN_IN_WORD = re.compile("[A-Za-z][\u4e00-\u9fff](?![\u4e00-\u9fff])")


def _han_count(text: str) -> int:
    return sum(1 for ch in text if 0x4E00 <= ord(ch) <= 0x9FFF)


def _latin_as_han(text: str, han: int) -> bool:
    """Latin-1 text read as CJK: most of its `han` Han characters alone inside a Latin word."""
    return len(_LONE_HAN_IN_WORD.findall(text)) * 2 > han


def _reads_as_chinese(text: str) -> bool:
    """What a declared latin-1 label needs before its text is read as Chinese instead: mostly
    Han characters, not alone inside Latin words, and some of the most common ones (the pairs
    latin-1 text makes are rare characters; real Chinese of any length uses common ones)."""
    if not _cjk_ratio_ok(text):
        return False
    han = _han_count(text)
    return not _latin_as_han(text, han) and _han_score(text) >= max(1.0, 0.1 * han)


def guess_decode(data: bytes, prefer: str | None = None) -> tuple[str, str]:
    """Decode undeclared 8-bit bytes: UTF-8, then `prefer` (a codec the context suggests), then
    GB18030 or Big5 by common characters (unless the reading is latin-1 accents in Latin words),
    then windows-1252."""
    for enc in ("utf-8", prefer) if prefer else ("utf-8",):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            pass
    candidates: list[tuple[str, str]] = []
    for enc in ("gb18030", "big5hkscs"):
        try:
            candidates.append((data.decode(enc), enc))
        except UnicodeDecodeError:
            continue
    if len(candidates) == 2:
        gb, big5 = candidates
        best = big5 if _han_score(big5[0]) > _han_score(gb[0]) else gb
        if not _latin_as_han(best[0], _han_count(best[0])):
            return best
    elif candidates and _cjk_ratio_ok(candidates[0][0]) and not _latin_as_han(candidates[0][0], _han_count(candidates[0][0])):
        return candidates[0]
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def no_surrogates(text: str) -> str:
    """Text safe for UTF-8 writers: lone surrogates (utf-7, unicode_escape, escaped raw bytes) become U+FFFD."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub("\ufffd", text)


def decode_bytes(data: bytes, label: str | None, defects: list[str] | None = None) -> tuple[str, str]:
    """Text of data in its declared charset, recovering mislabelled and undeclared text; never raises.

    Returns (text, codec used). Recoveries and replacements are appended to defects.
    """
    text, used = _decode_bytes(data, no_surrogates(label) if label else label, defects)
    return no_surrogates(text), used


def _decode_bytes(data: bytes, label: str | None, defects: list[str] | None) -> tuple[str, str]:
    enc = normalise_charset(label)
    if not data:
        return "", enc or "ascii"
    if data.isascii() and (enc is None or not enc.startswith(_ASCII_ENCODED)):
        return data.decode("ascii"), "ascii"
    if enc is None:
        if label and label.strip().lower() not in _UNKNOWN and defects is not None:
            defects.append(f"charset:unknown {label.strip()[:40]}")
        return guess_decode(data)
    try:
        text = data.decode(enc)
    except (UnicodeDecodeError, LookupError):
        text = ""
        ok = False
    else:
        ok = True
    if ok:
        # A label that decodes without error can still be wrong: UTF-8 declared as GB2312 or
        # latin-1 decodes "fine" into mojibake. Valid multi-byte UTF-8 is almost never an accident.
        if enc in _SINGLE_BYTE or enc in _MULTI_BYTE_CJK:
            if enc in _SINGLE_BYTE or _UTF8_MULTI.search(data):
                try:
                    utf = data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    if defects is not None:
                        defects.append(f"charset:mislabelled {label}->utf-8")
                    return utf, "utf-8"
            if enc in _SINGLE_BYTE:
                for cjk in ("gb18030", "big5hkscs"):
                    try:
                        alt = data.decode(cjk)
                    except UnicodeDecodeError:
                        continue
                    if _reads_as_chinese(alt):
                        if defects is not None:
                            defects.append(f"charset:mislabelled {label}->{cjk}")
                        return alt, cjk
                    break
        return text, enc
    if enc == "big5hkscs":
        try:
            return data.decode("cp950"), "cp950"
        except UnicodeDecodeError:
            pass
    text, used = guess_decode(data)
    if used in ("cp1252", "latin-1"):
        # nothing fits better than the label: keep it with replacement characters
        if defects is not None:
            defects.append(f"charset:undecodable {label}")
        return data.decode(enc, "replace"), enc
    if defects is not None:
        defects.append(f"charset:mislabelled {label}->{used}")
    return text, used


# ---------------------------------------------------------------- headers

_ENCODED_WORD = re.compile(r"=\?([^?\s]+?)\?([bBqQ])\?([^?]*)\?=")
# An encoded word that runs to the end of the value without its "?=", at least a few characters long.
_OPEN_WORD = re.compile(r"=\?([^?\s]+?)\?([bBqQ])\?([^?\s]{4,})$")


def header_bytes(value: str) -> bytes | None:
    """The original bytes of a header value read by the compat32 bytes parser (surrogate-escaped)."""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return None


def unfold(value: str) -> str:
    """RFC 5322 unfolding: line breaks inside a header value are folds; remove them, keep the blanks."""
    if "\n" in value:
        value = value.replace("\r\n", "").replace("\n", "")
    if "\r" in value:
        value = value.replace("\r", "")
    return value.strip()


def _word_bytes(enc_kind: str, text: str) -> bytes:
    raw = text.encode("ascii", "surrogateescape")
    if enc_kind in "bB":
        raw = raw.strip()
        missing = -len(raw) % 4
        if missing:
            raw += b"=" * missing
        try:
            return binascii.a2b_base64(raw)
        except (binascii.Error, ValueError):
            # drop trailing garbage a broken encoder left behind
            cut = len(raw) - len(raw) % 4
            try:
                return binascii.a2b_base64(raw[: max(0, cut - 4)])
            except (binascii.Error, ValueError):
                return raw
    return binascii.a2b_qp(raw, header=True)


def header_hint(label: str | None) -> str | None:
    """The codec to try on raw 8-bit header bytes before guessing, given the charset the message's text
    declares: only a multi-byte CJK charset, whose strict decoder rejects bytes of another one.
    Raw EUC-KR or Shift_JIS headers otherwise decode as GB18030 into plausible-looking Chinese
    ("[광고]" read as "[堡绊]"), which is how mail clients that use the body's charset differ."""
    enc = normalise_charset(label)
    return enc if enc in _MULTI_BYTE_CJK else None


def _decode_raw(text: str, defects: list[str] | None, hint: str | None = None) -> str:
    """A run of header text outside encoded words: ASCII, or raw 8-bit bytes in some charset."""
    if text.isascii():
        return text
    data = header_bytes(text)
    if data is None:  # already real unicode (str input): keep it
        return text
    # Raw UTF-8 (RFC 6532) is still tried first: GB18030 would decode it too, into nonsense.
    return guess_decode(data, hint)[0]


def decode_header(value: str, defects: list[str] | None = None, hint: str | None = None) -> str:
    """Unfold and decode one header value (RFC 2047 words, raw 8-bit); never raises.

    `hint` (from `header_hint`) is tried first on raw 8-bit runs."""
    return no_surrogates(_decode_header(unfold(value), defects, hint))


def _words(value: str, defects: list[str] | None) -> list[tuple[int, int, str, str, str]]:
    """The encoded words of a header value as (start, end, charset, B or Q, text); a last word
    whose "?=" is missing ("=?gb2312?B?UmU6IMfr", cut off by a broken mailer) is read as far as
    it goes, as a lenient mail client would show it."""
    words = [(m.start(), m.end(), m.group(1), m.group(2), m.group(3)) for m in _ENCODED_WORD.finditer(value)]
    pos = words[-1][1] if words else 0
    tail = _OPEN_WORD.search(value, pos)
    if tail:
        words.append((tail.start(), tail.end(), tail.group(1), tail.group(2), tail.group(3)))
        if defects is not None:
            defects.append("header:unterminated-encoded-word")
    return words


def _decode_word_bytes(data: bytes, charset: str, defects: list[str] | None) -> str:
    """The text of one run of encoded words. A mailer that cuts a long subject at a byte count
    leaves the last character half written: that half is dropped, as mail clients do, rather
    than reported as text in the wrong charset."""
    tried: list[str] = []
    text = decode_bytes(data, charset, tried)[0]
    if any(d.startswith("charset:undecodable") for d in tried):
        for cut in (c for c in (1, 2, 3) if c < len(data)):
            retry: list[str] = []
            shorter = decode_bytes(data[:-cut], charset, retry)[0]
            if not any(d.startswith("charset:undecodable") for d in retry):
                text, tried = shorter, retry
                break
    if defects is not None:
        defects.extend(tried)
    return text


def _decode_header(value: str, defects: list[str] | None, hint: str | None = None) -> str:
    if "=?" not in value:
        return value if value.isascii() else _decode_raw(value, defects, hint)
    out: list[str] = []
    pos = 0
    pending: bytearray | None = None
    pending_cs = ""
    for start, end, charset_label, kind, text in _words(value, defects):
        gap = value[pos:start]
        if gap and not (pending is not None and gap.isspace()):
            if pending is not None:
                out.append(_decode_word_bytes(bytes(pending), pending_cs, defects))
                pending = None
            out.append(_decode_raw(gap, defects, hint))
        charset = charset_label.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
        try:
            data = _word_bytes(kind, text)
        except (UnicodeEncodeError, ValueError, binascii.Error):
            data = value[start:end].encode("utf-8", "replace")
        if pending is not None and charset.lower() == pending_cs.lower():
            # adjacent words in one charset may split a multi-byte character between them
            pending += data
        else:
            if pending is not None:
                out.append(_decode_word_bytes(bytes(pending), pending_cs, defects))
            pending = bytearray(data)
            pending_cs = charset
        pos = end
    if pending is not None:
        out.append(_decode_word_bytes(bytes(pending), pending_cs, defects))
    if pos < len(value):
        out.append(_decode_raw(value[pos:], defects, hint))
    return "".join(out)


def decode_param(value: object, defects: list[str] | None = None) -> str:
    """A MIME parameter from compat32 get_param: RFC 2231 tuple, RFC 2047 inside quotes, or raw 8-bit."""
    if isinstance(value, tuple) and len(value) == 3:
        charset, _lang, text = value
        text = str(text or "")
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            data = header_bytes(text) or text.encode("utf-8", "replace")
        decoded = decode_bytes(data, str(charset or "") or None, defects)[0]
        return decode_header(decoded, defects) if "=?" in decoded else decoded
    if not isinstance(value, str):
        return ""
    return decode_header(value, defects)
