"""Download, verify and unpack the openly licensed corpora: EMO-DB (its web site) and RAVDESS speech (Zenodo).

The archive is fetched to ``<folder>/<name>.part`` and resumed with an HTTP Range request when an
earlier download was interrupted; it is checked (the MD5 the host publishes where there is one, the sizes its
members unpack to, the CRC of every zip member, and the number of wav files) before it is unpacked into a
temporary folder that is renamed into place. A redirect is followed (http and https only, never down to http) and
the address it led to printed. Knows nothing about models.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from typing import Optional

from ..core.atomic_file import FOLDER_MODE
from ..core.errors import UserError
from ..core.paths import command


@dataclass(frozen=True)
class Source:
    url: str
    md5: Optional[str]  # None where the host publishes no checksum
    wav_files: int  # the count a complete archive unpacks to
    licence: str


SOURCES = {
    # EMO-DB's site publishes no checksum: the zip's own CRCs and the file count are checked instead.
    "EMODB": Source("http://emodb.bilderbar.info/download/download.zip", None, 535,
                    "free for research; cite Burkhardt et al., Interspeech 2005"),
    # The MD5 Zenodo lists for record 1188976's speech archive.
    "RAVDE": Source("https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip",
                    "bc696df654c87fed845eb13823edef8a", 1440,
                    "CC BY-NC-SA 4.0; cite Livingstone and Russo, PLoS ONE 2018"),
}


# Far above the corpora's archives (RAVDESS' speech archive, the larger: 215 MB on its Zenodo page), far below a
# disk's worth: a host or a mirror that sends more, or an archive that unpacks to more, is no corpus of these.
MAX_ARCHIVE_BYTES = 4 * 2 ** 30
MAX_UNPACKED_BYTES = 16 * 2 ** 30
# Recordings barely compress: a member that unpacks to over 100 times its compressed bytes is a zip bomb's (a
# member of 0.1 MB that unpacked to 100 MB of zeros was taken as a recording).
MAX_RATIO = 100
RATIO_FROM_BYTES = 2 ** 20  # members that unpack to less are not judged by their ratio (MAX_UNPACKED_BYTES bounds them)


class _WebRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects to http and https only (urllib followed one to ftp:// too, and the error named the first address),
    and never from https to http: an archive asked for over https would arrive over a connection anyone on the way
    could change. (EMO-DB's own address is http://, and its archive has no published checksum: the wav count and
    every member's CRC are all that is checked of it.)"""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme
        if scheme not in ("http", "https"):
            raise UserError(f"{req.full_url}: redirects to {newurl}, not an http:// or https:// address")
        if scheme == "http" and urllib.parse.urlsplit(req.full_url).scheme == "https":
            raise UserError(f"{req.full_url}: redirects to {newurl}, from https:// to plain http://, where the "
                            "archive could be changed on its way; not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, part: str) -> bool:
    """Append the rest of ``url`` to ``part`` (a Range request from its current size), with progress on stderr.
    Returns whether ``part`` now holds the whole file, as far as the host says (False where it gives no length).
    A transfer that ends before the length the host announced is one line, ``part`` kept to resume."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.build_opener(_WebRedirects).open(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # nothing left to fetch: the part file is already complete
            return True
        raise UserError(f"{url}: download failed (HTTP {exc.code} {exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"{url}: cannot be reached ({getattr(exc, 'reason', exc)})") from None
    with response:
        _say_redirect(url, response.geturl())
        resumed = response.status == 206
        total = _announced_length(response.headers, have if resumed else 0)  # 0: the host does not say
        if total > MAX_ARCHIVE_BYTES:
            raise UserError(f"{url}: announces {total} bytes, more than the {MAX_ARCHIVE_BYTES} any corpus archive "
                            "stays under; nothing downloaded")
        done = have if resumed else 0
        # never through a link at the part file's name: the bytes went to whatever file it pointed to
        descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if resumed else
                                                                                os.O_TRUNC), 0o644)
        with os.fdopen(descriptor, "ab" if resumed else "wb") as f:
            while (chunk := response.read(1 << 20)) and done <= MAX_ARCHIVE_BYTES:
                f.write(chunk)
                done += len(chunk)
                if total:
                    sys.stderr.write(f"\rdownload: {done / 2 ** 20:.1f} / {total / 2 ** 20:.1f} MB")
        sys.stderr.write("\n")
    if done > MAX_ARCHIVE_BYTES:  # a host that announced no length, and sends on and on
        os.remove(part)
        raise UserError(f"{url}: sent more than the {MAX_ARCHIVE_BYTES} bytes any corpus archive stays under; "
                        "stopped, and what arrived removed")
    if total and done < total:  # the host closed early: an MD5 check then deleted what could be resumed
        raise UserError(f"{url}: the connection closed after {done} of {total} bytes; run the download again to "
                        "resume it")
    return bool(total)


def _say_redirect(url: str, final: str) -> None:
    """Say where the archive comes from when a redirect took the request away from ``url``: redirects are followed
    (mirrors and Zenodo's storage are reached by them), and another host's archive was taken without a word; an
    archive without a published checksum (EMO-DB's) is then only as good as that host."""
    if final == url:
        return
    asked, came = (urllib.parse.urlsplit(address).hostname for address in (url, final))
    print(f"redirected: the archive comes from {final}" + (f" (host {came}, not {asked})" if came != asked else ""))


def _announced_length(headers, have: int) -> int:
    """The whole file's length as the host announces it: a resumed answer's Content-Range total, else its
    Content-Length plus the ``have`` bytes kept; 0 where it announces none (a resumed answer without a length was
    taken for the whole file, and its part deleted as "not a zip archive")."""
    whole = re.fullmatch(r"bytes \d+-\d+/(\d+)", (headers.get("Content-Range") or "").strip())
    if whole:
        return int(whole.group(1))
    length = headers.get("Content-Length")
    return int(length) + have if length and length.isdigit() else 0


def _unsafe_member(info: zipfile.ZipInfo) -> bool:
    """An entry that would leave the folder it is unpacked into (an absolute path, '..') or that is a link."""
    parts = info.filename.replace("\\", "/").split("/")
    link = (info.external_attr >> 16) & 0o170000 == 0o120000
    return link or info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]


def _too_large(archive: zipfile.ZipFile) -> str:
    """Why ``archive`` would unpack to more than a corpus does (a member over ``MAX_RATIO`` times its compressed
    bytes, all of them over ``MAX_UNPACKED_BYTES``), or "". Read from the sizes its directory declares, before any
    member is decompressed: zipfile never unpacks a member to more than its declared size."""
    for info in archive.infolist():  # a small text file beside the recordings may compress that well
        if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            return (f"member {info.filename!r} unpacks to {info.file_size} bytes from {info.compress_size}, more "
                    f"than {MAX_RATIO} times as many, as no recording does (a zip bomb)")
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_UNPACKED_BYTES:
        return f"unpacks to {total} bytes, more than the {MAX_UNPACKED_BYTES} any corpus stays under"
    return ""


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download(key: str, folder: str, url: Optional[str] = None, md5: Optional[str] = None) -> str:
    """Fetch corpus ``key`` (or a mirror ``url`` with its ``md5``), verify it, unpack to ``folder/key``."""
    if key not in SOURCES:
        raise UserError(f"--data {key}: no open download is known; downloadable: {', '.join(SOURCES)}")
    source = SOURCES[key]
    if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise UserError(f"--url {url}: not an http:// or https:// address")
    if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise UserError(f"--md5 {md5}: an MD5 checksum is 32 hexadecimal digits")
    url, md5 = url or source.url, md5 or (None if url else source.md5)
    target = os.path.join(folder, key)
    if os.path.isdir(target):
        raise UserError(f"{target}: already exists; remove it to download {key} again")
    if os.path.lexists(target):  # a file or a link: the unpacked folder could not take its name, after the download
        raise UserError(f"{target}: a file (or a link) has the name the corpus' folder would take; move it away")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the download folder ({exc.strerror})") from None
    part = os.path.join(folder, f"{key}.zip.part")
    if os.path.islink(part):
        raise UserError(f"{part}: a link; the download writes its file there itself: remove the link")
    print(f"downloading {key} from {url} ({source.licence})")
    whole = _fetch(url, part)
    if md5 and _md5(part) != md5.lower():  # as Zenodo and md5sum print it, or in capitals
        os.remove(part)  # a corrupt archive cannot be resumed: start afresh next time
        raise UserError(f"{part}: MD5 differs from the published {md5}; removed, run the download again")
    try:
        with zipfile.ZipFile(part) as archive:
            unsafe = [info.filename for info in archive.infolist() if _unsafe_member(info)]
            if unsafe:  # extractall made such entries harmless, but they counted as the corpus' files
                os.remove(part)
                raise UserError(f"{part}: holds {unsafe[0]!r}, an entry outside the archive's folder or a link, "
                                "which no corpus archive holds; removed, nothing unpacked")
            too_large = _too_large(archive)
            if too_large:  # before testzip, which decompressed every byte of it
                os.remove(part)
                raise UserError(f"{part}: {too_large}; removed, nothing unpacked")
            broken = archive.testzip()
            wavs = [n for n in archive.namelist() if n.lower().endswith(".wav")]
            wrong = (f"member {broken} is corrupt" if broken else
                     f"holds {len(wavs)} wav files, a complete {key} has {source.wav_files}"
                     if md5 is None and len(wavs) != source.wav_files else "")  # without a checksum: the count
            if wrong:  # a whole file: every rerun got HTTP 416 and the same line
                if whole:
                    os.remove(part)
                raise UserError(f"{part}: {wrong}{'; removed, run the download again' if whole else ''}")
            staging = tempfile.mkdtemp(prefix=f".{key}.", dir=folder)
            try:
                os.chmod(staging, FOLDER_MODE)  # mkdtemp's 0o700 became the corpus folder's mode
                archive.extractall(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except zipfile.BadZipFile:
        if whole:  # resuming it would fetch nothing and say the same again
            os.remove(part)
            raise UserError(f"{part}: the whole file arrived and is not a zip archive (a mirror's page instead of "
                            "the corpus?); removed") from None
        raise UserError(f"{part}: not a complete zip archive; run the download again to resume it") from None
    os.replace(staging, target)
    os.remove(part)
    print(f"unpacked {len(wavs)} wav files to {target}")
    print(f"next: {command()} --mode extract --data {key} --wav_path {target}")
    return target

