"""Header and body decoding: RFC 2047/2231, raw 8-bit, Chinese charsets, mislabelled text."""

from __future__ import annotations

import base64

from mailmoat.parse import parse
from mailmoat.parse.charset import decode_bytes, decode_header, decode_param, guess_decode, normalise_charset


def _surrogates(data: bytes) -> str:
    """A header value as the compat32 bytes parser hands it over."""
    return data.decode("ascii", "surrogateescape")


def test_gb2312_label_decodes_gbk_characters() -> None:
    # 镕 is in GBK but not in GB2312: real mail labelled gb2312 carries it
    word = "=?gb2312?B?" + base64.b64encode("朱镕基".encode("gbk")).decode() + "?="
    assert decode_header(word) == "朱镕基"
    assert normalise_charset("GB2312") == "gb18030"
    assert normalise_charset("x-gbk") == "gb18030"


def test_big5_and_utf8_words_and_quoted_printable() -> None:
    assert decode_header("=?big5?B?" + base64.b64encode("帳戶通知".encode("big5")).decode() + "?=") == "帳戶通知"
    assert decode_header("=?UTF-8?Q?caf=C3=A9_cr=C3=A8me?=") == "café crème"
    assert decode_header("=?utf-8*en?Q?hello?=") == "hello"  # RFC 2231 language tag


def test_adjacent_words_split_a_multibyte_character() -> None:
    data = "密码过期".encode()
    first, second = base64.b64encode(data[:4]).decode(), base64.b64encode(data[4:]).decode()
    assert decode_header(f"=?utf-8?B?{first}?=\r\n =?utf-8?B?{second}?=") == "密码过期"


def test_text_between_words_is_kept_and_whitespace_between_words_dropped() -> None:
    assert decode_header("Re: =?utf-8?Q?a?= =?utf-8?Q?b?= end") == "Re: ab end"


def test_raw_8bit_headers_in_several_charsets() -> None:
    assert decode_header(_surrogates("发票通知".encode("gbk"))) == "发票通知"
    assert decode_header(_surrogates("密码".encode())) == "密码"
    assert decode_header(_surrogates("帳戶已被鎖定請登入驗證".encode("big5"))) == "帳戶已被鎖定請登入驗證"


def test_broken_encoded_words_do_not_raise() -> None:
    for value in ("=?utf-8?B?####?=", "=?nosuch?Q?x?=", "=?utf-8?B?", "=?base64?B?aGk=?=", "=?zlib?B?eJw=?="):
        assert isinstance(decode_header(value), str)


def test_an_encoded_word_cut_off_before_its_end_is_read_as_far_as_it_goes() -> None:
    word = base64.b64encode("请查收工资补贴通知".encode("gbk")).decode()
    defects: list[str] = []
    assert decode_header(f"Re: =?gb2312?B?{word}", defects) == "Re: 请查收工资补贴通知"
    assert defects == ["header:unterminated-encoded-word"]
    defects = []
    assert decode_header("=?utf-8?Q?Caf=C3=A9_cr=C3=A8me", defects) == "Café crème"
    assert defects == ["header:unterminated-encoded-word"]
    # a closed word is no defect, and a bare opening is left as written
    defects = []
    assert decode_header("=?utf-8?Q?Caf=C3=A9?= ok", defects) == "Café ok" and defects == []
    assert decode_header("price =?utf-8?B?", defects) == "price =?utf-8?B?" and defects == []


def test_a_subject_cut_inside_its_last_character_drops_that_half() -> None:
    """Mailers that cut a long subject at a byte count leave half a character: it is dropped, as
    clients do, and is no sign of text in the wrong charset; bad bytes elsewhere still are."""
    defects: list[str] = []
    cut = base64.b64encode("请查收工资".encode("gbk")[:-1]).decode()
    assert decode_header(f"=?gb2312?B?{cut}?=", defects) == "请查收工" and defects == []
    cut = base64.b64encode("café".encode()[:-1]).decode()
    assert decode_header(f"=?utf-8?B?{cut}", defects) == "caf"
    assert defects == ["header:unterminated-encoded-word"]
    defects = []
    decode_header("=?utf-8?B?" + base64.b64encode(b"\xff\xfeabc").decode() + "?=", defects)
    assert defects == ["charset:undecodable utf-8"]


def test_mislabelled_bodies_are_recovered() -> None:
    defects: list[str] = []
    text, used = decode_bytes("Пароль".encode(), "iso-8859-1", defects)
    assert (text, used) == ("Пароль", "utf-8")
    text, used = decode_bytes("您的密码今天过期".encode("gbk"), "utf-8", defects)
    assert text == "您的密码今天过期" and used == "gb18030"
    text, used = decode_bytes("你好，请查收发票".encode("gbk"), "iso-8859-1", defects)
    assert text == "你好，请查收发票"
    assert len(defects) == 3 and all(d.startswith("charset:mislabelled") for d in defects)


def test_declared_charset_kept_when_it_fits() -> None:
    defects: list[str] = []
    assert decode_bytes("café".encode("latin-1"), "iso-8859-1", defects) == ("café", "cp1252")
    assert decode_bytes("“quoted”".encode("cp1252"), "iso-8859-1", defects)[0] == "“quoted”"
    assert decode_bytes("Größe".encode(), "utf-8", defects)[0] == "Größe"
    assert defects == []


def test_latin1_accents_before_letters_stay_latin1() -> None:
    """An accent before an ASCII letter is also a valid GB18030 pair ("w\xe1llet" -> "w醠let"); a
    text whose every such pair makes a rare character is the latin-1 it says it is."""
    defects: list[str] = []
    disguised = "Please v\u00e1lidate your w\u00e1llet and p\u00e1ssphrase today".encode("latin-1")
    assert decode_bytes(disguised, "iso-8859-1", defects) == (disguised.decode("latin-1"), "cp1252")
    french = "R\u00e9sum\u00e9 joint, \u00e0 bient\u00f4t. Fran\u00e7ois".encode("latin-1")
    assert decode_bytes(french, "iso-8859-1", defects)[0] == french.decode("latin-1")
    russian = "\u041f\u0440\u0438\u0432\u0435\u0442 mir \u0434\u0440\u0443\u0433".encode("cp1251")
    assert decode_bytes(russian, "windows-1251", defects)[0] == russian.decode("cp1251")
    assert defects == []


def test_undeclared_bytes_guessed() -> None:
    assert guess_decode("中文邮件内容，发票。".encode("gbk"))[0] == "中文邮件内容，发票。"
    assert guess_decode("中文郵件內容，您的帳戶。".encode("big5"))[1] in ("big5hkscs", "gb18030")
    assert guess_decode("中文郵件內容，您的帳戶已被鎖定，請登入驗證。".encode("big5"))[0] == "中文郵件內容，您的帳戶已被鎖定，請登入驗證。"
    assert guess_decode(b"caf\xe9")[0] == "café"
    # latin-1 accents before ASCII letters are valid GB18030 and Big5 pairs too
    assert guess_decode("François Dupont, Grüße aus München".encode("latin-1"))[0] == "François Dupont, Grüße aus München"
    assert guess_decode("Renée".encode("latin-1"))[0] == "Renée"
    assert guess_decode("王芳".encode("gbk"))[0] == "王芳"
    # a newsgroup reply framed with box drawing and stars, in bytes Big5 cannot read
    quoted = "你的垃圾放在门口，也很影响别人的呀。楼道本来就是公共的\n: ☆──────────────────☆\n:    coolde 于 (Tue Jul  5 2005) 提到:\n: 隔壁有一对老头"
    assert guess_decode(quoted.encode("gbk")) == (quoted, "gb18030")
    faces = "人的命真的是天注定么？都是表面的东西 ︶﹀︶﹀︶﹀︶﹀ 希腊字母 αβγδεζ·ΑΒΓΔ"
    assert guess_decode(faces.encode("gbk")) == (faces, "gb18030")
    assert guess_decode("DHL快递".encode("gbk"))[0] == "DHL快递"


def test_unknown_and_hostile_labels() -> None:
    defects: list[str] = []
    assert decode_bytes(b"abc\xff", "x-nonsense", defects)[0].startswith("abc")
    assert defects == ["charset:unknown x-nonsense"]
    assert normalise_charset("base64") is None  # a codec, not a charset
    assert normalise_charset('charset="GB2312"') == "gb18030"
    assert decode_bytes(b"+ZeVnLIqe-", "utf-7")[0] == "日本語"


def test_rfc2231_param_tuple() -> None:
    assert decode_param(("utf-8", "", b"%E5%8F%91%E7%A5%A8.pdf".decode("latin-1"))) == "%E5%8F%91%E7%A5%A8.pdf"
    raw = "发票.pdf".encode().decode("latin-1")
    assert decode_param(("utf-8", "en", raw)) == "发票.pdf"
    assert decode_param(("gb2312", "", "发票.pdf".encode("gbk").decode("latin-1"))) == "发票.pdf"
    assert decode_param(None) == ""


def test_raw_8bit_headers_follow_the_text_charset() -> None:
    """Raw EUC-KR or Shift_JIS headers read in the charset the body declares, as mail clients do;
    guessed alone they decode as GB18030 into plausible Chinese ("[광고]" as "[堡绊]")."""
    subject = "[광고] 부동산 정보".encode("euc-kr")
    body = "안녕하세요 부동산 정보입니다".encode("euc-kr")
    raw = (
        b"From: " + "정보나라".encode("euc-kr") + b" <a@example.kr>\r\nSubject: " + subject
        + b"\r\nContent-Type: text/plain; charset=ks_c_5601-1987\r\n\r\n" + body + b"\r\n"
    )
    msg = parse(raw)
    assert msg.subject == "[광고] 부동산 정보"
    assert msg.from_.display == "정보나라"
    assert decode_header(subject.decode("ascii", "surrogateescape")) != "[광고] 부동산 정보"  # the guess alone
    jp = "お知らせ".encode("shift_jis")
    raw_jp = b"Subject: " + jp + b"\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\n" + jp + b"\r\n"
    assert parse(raw_jp).subject == "お知らせ"
    # A text charset that is not CJK says nothing about raw header bytes: GBK is still recognised.
    gbk = "工资补贴通知".encode("gbk")
    raw_zh = b"Subject: " + gbk + b"\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nhello\r\n"
    assert parse(raw_zh).subject == "工资补贴通知"
    # Raw UTF-8 headers (RFC 6532) stay UTF-8 whatever the text declares: GB18030 would read them too.
    utf = "工资补贴通知".encode()
    for label in (b"euc-kr", b"gb2312", b"big5"):
        raw_utf = b"Subject: " + utf + b"\r\nContent-Type: text/plain; charset=" + label + b"\r\n\r\nhello\r\n"
        assert parse(raw_utf).subject == "工资补贴通知", label
