"""Archive readers (zip, 7z, rar, tar, gz, bz2, xz, iso) that stream every member through the unpacking budget."""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from struct import error as struct_error
from typing import IO, Any

from mailmoat.attach.files import CHUNK, RATIO_FLOOR, Budget, Event, LimitExceeded
from mailmoat.attach.sniff import ARCHIVE_EXTS
from mailmoat.model import Message

log = logging.getLogger(__name__)

EXPANDABLE = frozenset({"zip", "jar", "7z", "rar", "tar", "gz", "bz2", "xz", "iso"})
# Containers recognised as archives that are not opened here (Cabinet, ACE, ARJ).
UNOPENED = ARCHIVE_EXTS - EXPANDABLE

# "password: 1234", "pwd=1234", "密码：1234", "口令 1234", "解压密码是1234", and in Traditional
# characters "密碼：1234", "解壓碼為1234" (the text is not folded to Simplified: that would change a
# password written in Chinese characters); a few words may name what it opens when a colon or a
# bracket follows them ("Senha do arquivo em anexo: 123", "password for the PDF: 1234",
# "CONTRASEÑA PERSONAL {0808}"), and brackets around the password are not part of it ("密码【8899】").
_PASSWORD_RE = re.compile(
    r"(?:passwords?|passwort|kennwort|pass(?:code|phrase)?|pwd|pw|mot\s+de\s+passe|contrase[ñn]a|senha|"
    r"пароль|密\s*[码碼]|口\s*令|解[压壓][码碼]|提取[码碼]|暗証番号|パスワード|비밀번호)"
    r"(?:(?:\s+[^\s:：\"'<>.,;。，；]{1,15}){1,4}?\s*[:：]|(?:\s+[^\s:：\"'<>.,;。，；{\[【(（「『]{1,15}){1,3}?\s*(?=[{\[【(（「『])"
    r"|\s*(?:is|ist|est|es|为|為|是|:|：|=|-|—)?\s*(?:is|为|為|是|:|：)?)"
    r"\s*[\"'“「『(（{\[【]?([^\s\"'”」』)）}\]】<>,，。;；]{1,64})",
    re.IGNORECASE,
)
MAX_PASSWORDS = 12


def passwords_from_text(text: str) -> list[str]:
    """Password candidates that a message body announces, most specific first, without duplicates."""
    found: list[str] = []
    for m in _PASSWORD_RE.finditer(text[:200_000]):
        cand = m.group(1).strip().rstrip(".!?！。")
        if cand and cand.lower() not in {"is", "for", "the", "and", "to", "of", "protected", "required"} and cand not in found:
            found.append(cand)
        if len(found) >= MAX_PASSWORDS:
            break
    return found


def announced_passwords(message: Message) -> list[str]:
    """The passwords a message announces for its locked archives and documents.

    Read from the subject and both bodies: a mail client shows one of the plain and the HTML part,
    and a kit may write the password only in the one that says less.
    """
    return passwords_from_text("\n".join((message.subject, message.text, message.html_text)))


@dataclass
class Member:
    """One entry read out of a container; `data` None = listed but not read (encrypted, unsupported, bomb)."""

    name: str
    data: bytes | None
    encrypted: bool = False
    decrypted: bool = False


NAMES_PAST_LIMIT = 50_000  # member names of a zip past the member limit still checked by name


class Unpacker:
    """Reads one container with the message's budget, recording what it meets as events."""

    def __init__(self, budget: Budget, passwords: list[str], events: list[Event], location: str) -> None:
        self.budget = budget
        self.passwords = passwords
        self.events = events
        self.location = location

    def event(self, kind: str, detail: str, **data: Any) -> None:
        self.events.append(Event(kind, self.location, detail, dict(data)))

    def guarded_read(self, open_stream: Callable[[], Any], packed: int, name: str) -> bytes | None:
        """Read one member; a per-member bomb becomes an event and None, the whole-message limits propagate."""
        try:
            with open_stream() as stream:
                return self.budget.read(stream, packed, name)
        except LimitExceeded as exc:
            if exc.kind == "bomb" and "in total" not in exc.detail:
                self.event("bomb", exc.detail, member=name)
                return None
            raise

    # -- formats --------------------------------------------------------------------------------

    def zip(self, data: bytes) -> Iterator[Member]:
        import pyzipper

        try:
            zf = pyzipper.AESZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, pyzipper.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            self.event("corrupt", f"unreadable zip: {exc}")
            return
        with zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            pw_used: str | None = None
            for k, info in enumerate(infos):
                self.budget.check_time()
                try:
                    self.budget.take_member()
                except LimitExceeded:
                    # Past the member limit the names are read already: named, not opened, they are
                    # still checked (an .exe after 4,000 dummy files was delivered at 4).
                    for rest in infos[k : k + NAMES_PAST_LIMIT]:
                        yield Member(_zip_name(rest), None)
                    raise
                name = _zip_name(info)
                encrypted = bool(info.flag_bits & 0x1)
                if encrypted:
                    candidates = ([pw_used] if pw_used else []) + [p for p in self.passwords if p != pw_used]
                    got = None
                    for pw in candidates:
                        try:
                            got = self.guarded_read(
                                partial(zf.open, info, pwd=pw.encode("utf-8")), info.compress_size, name
                            )
                        except LimitExceeded:
                            raise
                        except Exception:  # wrong password: bad check byte, or garbage that fails to inflate/CRC
                            continue
                        pw_used = pw
                        break
                    if pw_used is None or got is None:
                        yield Member(name, None, encrypted=True)
                        continue
                    yield Member(name, got, encrypted=True, decrypted=True)
                    continue
                try:
                    got = self.guarded_read(partial(zf.open, info), info.compress_size, name)
                except NotImplementedError as exc:
                    self.event("unsupported", f"{name}: {exc}", member=name)
                    yield Member(name, None)
                    continue
                except LimitExceeded:
                    raise
                except Exception as exc:  # damaged member: zlib/bz2/lzma errors, bad CRC, truncated data
                    self.event("corrupt", f"{name}: {type(exc).__name__}: {exc}", member=name)
                    yield Member(name, None)
                    continue
                yield Member(name, got)
            enc = [_zip_name(i) for i in infos if i.flag_bits & 0x1]
            if enc:
                self._encrypted_event("zip", enc, pw_used)

    def _encrypted_event(self, fmt: str, names: list[str], password: str | None) -> None:
        if password is None:
            self.event("encrypted", f"encrypted {fmt} ({len(names)} members) and no password in the message opened it", members=names[:20])
        else:
            self.event("decrypted", f"encrypted {fmt} opened with the password the message gives", members=names[:20], password=password)

    def _declares_too_much(self, infos: Any, packed: int) -> bool:
        lim = self.budget.limits
        sizes = [int(i.uncompressed or 0) for i in infos if not i.is_directory]
        total = sum(sizes)
        return (any(n > lim.max_member for n in sizes) or self.budget.expanded + total > lim.max_total
                or (total > RATIO_FLOOR and total / max(packed, 1) > lim.max_ratio))

    def sevenzip(self, data: bytes) -> Iterator[Member]:
        import py7zr
        import py7zr.exceptions

        def open_archive(password: str | None) -> Any:
            return py7zr.SevenZipFile(io.BytesIO(data), mode="r", password=password)

        try:
            probe = open_archive(None)
        except py7zr.exceptions.PasswordRequired:
            probe = None
        except Exception as exc:  # py7zr raises a wide range on damaged input
            self.event("corrupt", f"unreadable 7z: {exc}")
            return
        password: str | None = None
        encrypted = probe is None or probe.needs_password()
        if encrypted:
            if probe is not None:
                probe.close()
            probe = None
            for pw in self.passwords:
                try:
                    cand = open_archive(pw)
                    # Testing a password unpacks everything: sizes the header declares past the
                    # limits make it a bomb whichever password opens it (a 156 KB attachment took
                    # 10 s and 555 MB to test), and the admission below says so without unpacking.
                    if not self._declares_too_much(cand.list(), len(data)):
                        if cand.testzip() is not None:  # a wrong password gives bad CRCs (or raises)
                            continue
                        cand.reset()
                except Exception:
                    continue
                probe, password = cand, pw
                break
            if probe is None:
                try:
                    names = open_archive("").namelist()  # header unencrypted: names still readable
                except Exception:
                    names = []
                self._encrypted_event("7z", names, None)
                for n in names[: self.budget.limits.max_members]:
                    self.budget.take_member()
                    yield Member(n, None, encrypted=True)
                return
        assert probe is not None
        with probe:
            infos = [i for i in probe.list() if not i.is_directory]
            total_packed = len(data)
            for _info in infos:
                self.budget.take_member()
            declared = sum(int(i.uncompressed or 0) for i in infos)
            try:
                # 7z decoders stop at the sizes the header declares, so checking them first is sound.
                for info in infos:
                    self.budget.admit(int(info.uncompressed or 0), max(int(info.compressed or 0), 1) if info.compressed else total_packed, info.filename)
                self.budget.admit(declared, total_packed, "7z archive")
            except LimitExceeded as exc:
                if "in total" in exc.detail:
                    raise
                self.event("bomb", exc.detail)
                for info in infos:
                    yield Member(info.filename, None, encrypted=encrypted)
                return
            factory = _CappedFactory(self.budget)
            try:
                probe.extractall(factory=factory)
            except LimitExceeded:
                raise
            except Exception as exc:
                self.event("corrupt", f"7z extraction failed: {exc}")
            for info in infos:
                got = factory.get(info.filename)
                self.budget.expanded += len(got) if got is not None else 0
                yield Member(info.filename, got, encrypted=encrypted, decrypted=encrypted and got is not None)
            if encrypted:
                self._encrypted_event("7z", [i.filename for i in infos], password)

    def rar(self, data: bytes) -> Iterator[Member]:
        import rarfile

        try:
            rf = rarfile.RarFile(io.BytesIO(data))
        except rarfile.PasswordRequired:
            self._encrypted_event("rar", [], None)
            return
        except (rarfile.Error, OSError, ValueError, EOFError) as exc:
            self.event("corrupt", f"unreadable rar: {exc}")
            return
        with rf:
            infos = [i for i in rf.infolist() if not i.is_dir()]
            enc: list[str] = []
            pw_used: str | None = None
            for info in infos:
                self.budget.check_time()
                self.budget.take_member()
                name = info.filename or "?"
                packed = int(info.compress_size or 0)
                if info.needs_password():
                    enc.append(name)
                    got = None
                    for pw in self.passwords:
                        try:
                            got = self.guarded_read(partial(rf.open, info, pwd=pw), packed, name)
                        except LimitExceeded:
                            raise
                        except Exception:  # wrong password or damaged member
                            continue
                        pw_used = pw
                        break
                    yield Member(name, got, encrypted=True, decrypted=got is not None)
                    continue
                try:
                    got = self.guarded_read(partial(rf.open, info), packed, name)
                except (rarfile.RarCannotExec, rarfile.BadRarFile, rarfile.NotRarFile, rarfile.RarExecError) as exc:
                    self.event("unsupported", f"{name}: RAR member needs an unrar backend that can decompress it ({exc})", member=name)
                    yield Member(name, None)
                    continue
                except LimitExceeded:
                    raise
                except Exception as exc:  # damaged member
                    self.event("corrupt", f"{name}: {type(exc).__name__}: {exc}", member=name)
                    yield Member(name, None)
                    continue
                yield Member(name, got)
            if enc:
                self._encrypted_event("rar", enc, pw_used)

    def tar(self, data: bytes) -> Iterator[Member]:
        try:
            tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 (closed below)
        except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
            self.event("corrupt", f"unreadable tar: {exc}")
            return
        with tf:
            try:
                for ti in tf:
                    self.budget.check_time()
                    if not ti.isfile():
                        continue
                    self.budget.take_member()

                    def opener(ti: tarfile.TarInfo = ti) -> IO[bytes]:
                        f = tf.extractfile(ti)
                        if f is None:
                            raise OSError("no data")
                        return f

                    yield Member(ti.name, self.guarded_read(opener, max(ti.size, 1), ti.name))
            except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
                self.event("corrupt", f"damaged tar: {exc}")

    def stream(self, data: bytes, fmt: str, name: str) -> Iterator[Member]:
        """A single compressed stream (gz, bz2, xz): one member named after the container."""
        inner = _strip_suffix(name, fmt)
        if fmt == "gz":
            inner = _gzip_name(data) or inner
        self.budget.take_member()
        opener: Callable[[], Any]
        if fmt == "gz":
            opener = lambda: gzip.GzipFile(fileobj=io.BytesIO(data))  # noqa: E731
        elif fmt == "bz2":
            opener = lambda: bz2.BZ2File(io.BytesIO(data))  # noqa: E731
        else:
            opener = lambda: lzma.LZMAFile(io.BytesIO(data))  # noqa: E731, SIM115
        try:
            got = self.guarded_read(opener, len(data), inner)
        except LimitExceeded:
            raise
        except Exception as exc:  # gzip/bz2/lzma raise OSError, EOFError, zlib.error, LZMAError ...
            self.event("corrupt", f"damaged {fmt} stream: {type(exc).__name__}: {exc}")
            return
        yield Member(inner, got)

    def iso(self, data: bytes) -> Iterator[Member]:
        import pycdlib
        from pycdlib.pycdlibexception import PyCdlibException

        iso = pycdlib.PyCdlib()
        try:
            iso.open_fp(io.BytesIO(data))
        except (PyCdlibException, OSError, ValueError, EOFError, struct_error) as exc:
            self.event("corrupt", f"unreadable disk image: {exc}")
            return
        facade: Any
        try:
            if iso.has_udf():
                facade, kind = iso.get_udf_facade(), "udf_path"
            elif iso.has_joliet():
                facade, kind = iso.get_joliet_facade(), "joliet_path"
            elif iso.has_rock_ridge():
                facade, kind = iso.get_rock_ridge_facade(), "rr_path"
            else:
                facade, kind = iso.get_iso9660_facade(), "iso_path"
            for dirname, _dirs, files in facade.walk("/"):
                for fname in files:
                    self.budget.check_time()
                    self.budget.take_member()
                    path = dirname.rstrip("/") + "/" + fname
                    shown = path.lstrip("/")
                    if kind == "iso_path":
                        shown = shown.split(";", 1)[0]

                    def opener(path: str = path) -> Any:
                        return iso.open_file_from_iso(**{kind: path})

                    try:
                        got = self.guarded_read(opener, len(data), shown)
                    except LimitExceeded:
                        raise
                    except Exception as exc:  # damaged image
                        self.event("corrupt", f"{shown}: {exc}", member=shown)
                        got = None
                    yield Member(shown, got)
        except (PyCdlibException, OSError, ValueError, EOFError, struct_error) as exc:
            self.event("corrupt", f"damaged disk image: {exc}")
        finally:
            try:
                iso.close()
            except Exception:
                log.debug("closing iso failed", exc_info=True)

    def members(self, data: bytes, fmt: str, name: str) -> Iterator[Member]:
        if fmt in ("zip", "jar"):
            return self.zip(data)
        if fmt == "7z":
            return self.sevenzip(data)
        if fmt == "rar":
            return self.rar(data)
        if fmt == "tar":
            return self.tar(data)
        if fmt in ("gz", "bz2", "xz"):
            return self.stream(data, fmt, name)
        if fmt == "iso":
            return self.iso(data)
        return iter(())


class _CappedWriter:
    """py7zr writer that refuses to grow past the per-member limit (belt and braces over the header check)."""

    def __init__(self, budget: Budget, name: str) -> None:
        self.buf = bytearray()
        self.budget = budget
        self.name = name
        self.over = False

    def write(self, s: bytes | bytearray) -> int:
        if len(self.buf) + len(s) > self.budget.limits.max_member:
            self.over = True
            return len(s)
        self.buf += s
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return len(self.buf)

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return len(self.buf)

    def close(self) -> None:
        return None


class _CappedFactory:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.products: dict[str, _CappedWriter] = {}

    def create(self, filename: str) -> _CappedWriter:
        self.budget.check_time()
        w = _CappedWriter(self.budget, filename)
        self.products[filename] = w
        return w

    def get(self, filename: str) -> bytes | None:
        w = self.products.get(filename)
        if w is None or w.over:
            return None
        return bytes(w.buf)


def _zip_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800:
        # Names without the UTF-8 flag were decoded as cp437; Chinese tools write GBK, others UTF-8.
        try:
            raw = name.encode("cp437")
        except UnicodeEncodeError:
            return name
        for enc in ("utf-8", "gbk"):
            try:
                return raw.decode(enc)
            except UnicodeDecodeError:
                continue
    return name


def _strip_suffix(name: str, fmt: str) -> str:
    lower = name.lower()
    for suffix, repl in ((".tgz", ".tar"), (".tbz2", ".tar"), (".tbz", ".tar"), (".txz", ".tar"), (f".{fmt}", "")):
        if lower.endswith(suffix):
            return name[: len(name) - len(suffix)] + repl
    return name or "stream"


def _gzip_name(data: bytes) -> str:
    """FNAME from a gzip header, if the writer stored one."""
    if len(data) < 10 or not data[3] & 0x08:
        return ""
    pos = 10
    if data[3] & 0x04:  # FEXTRA
        if len(data) < 12:
            return ""
        pos += 2 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\0", pos, pos + 1024)
    if end < 0:
        return ""
    return data[pos:end].decode("latin-1")


__all__ = ["CHUNK", "EXPANDABLE", "Member", "Unpacker", "announced_passwords", "passwords_from_text"]
