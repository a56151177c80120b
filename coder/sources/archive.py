"""Zip packages from elsewhere (.docx, .xlsx, .qdpx), opened with limits.

A colleague's or another tool's file must not exhaust the machine: before anything is unpacked
the members' declared sizes are checked against per-member and total limits and a compression
ratio no real document reaches (zip bombs); zipfile itself never unpacks more than a member
declares, and checks each member's CRC. Member names are never used as paths to write to.
Every refusal names the file and the limit.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib
from pathlib import Path

from coder.errors import InputError

MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 256 * 2**20
MAX_TOTAL_BYTES = 1 * 2**30
MAX_RATIO = 200            # unpacked / packed, for members over RATIO_FROM bytes
RATIO_FROM = 2**20


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def check(z: zipfile.ZipFile, path: Path, *, kind: str, error=InputError) -> None:
    """Refuse a package whose members would unpack past the limits."""
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise error(f"the {kind} package has {len(infos):,} members, over the limit of "
                    f"{MAX_MEMBERS:,}", path=path)
    total = 0
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise error(f"member '{info.filename}' would unpack to {_mb(info.file_size)}, over "
                        f"the {_mb(MAX_MEMBER_BYTES)} limit for one member", path=path)
        if info.file_size > RATIO_FROM and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise error(f"member '{info.filename}' is compressed {info.file_size // max(info.compress_size, 1):,} "
                        f"to 1 (over {MAX_RATIO} to 1): a zip bomb, not a {kind}", path=path)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise error(f"the {kind} package would unpack to more than {_mb(MAX_TOTAL_BYTES)}",
                        path=path)


def open_zip(source: Path | bytes, path: Path, *, kind: str, error=InputError,
             hint: str | None = None, not_zip: str | None = None) -> zipfile.ZipFile:
    """A checked ZipFile over a file or its bytes; a damaged or oversized one is refused
    (``not_zip``: the message for a file that is no zip at all)."""
    import io

    try:
        z = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise error(not_zip or f"not a readable zip package, so not a {kind}", path=path,
                    hint=hint) from None
    try:
        check(z, path, kind=kind, error=error)
    except BaseException:
        z.close()
        raise
    return z


def read_member(z: zipfile.ZipFile, name: str, path: Path, *, kind: str,
                error=InputError) -> bytes:
    """One member's bytes; a damaged member (bad CRC, broken deflate stream) is refused."""
    try:
        return z.read(name)
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
            NotImplementedError, RuntimeError) as e:
        raise error(f"member '{name}' of the {kind} is damaged ({e})", path=path,
                    hint="export or save the file again") from None


def check_package(data: bytes, path: Path, *, kind: str, error=InputError,
                  hint: str | None = None, not_zip: str | None = None) -> None:
    """Check a package's limits and every member's integrity before another library opens it."""
    with open_zip(data, path, kind=kind, error=error, hint=hint, not_zip=not_zip) as z:
        bad = None
        try:
            bad = z.testzip()
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
                NotImplementedError, RuntimeError) as e:
            raise error(f"the {kind} package is damaged ({e})", path=path, hint=hint) from None
        if bad is not None:
            raise error(f"member '{bad}' of the {kind} is damaged (bad CRC-32)", path=path,
                        hint=hint)
