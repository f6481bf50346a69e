"""Download, verify and unpack the openly licensed corpora: EMO-DB (its web site) and RAVDESS speech (Zenodo).

The archive is fetched to ``<folder>/<name>.part`` and resumed with an HTTP Range request when an
earlier download was interrupted; it is checked (the MD5 the host publishes where there is one, the
CRC of every zip member, and the number of wav files) before it is unpacked into a temporary folder
that is renamed into place. Knows nothing about models.
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

from ..core.errors import UserError


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


def _fetch(url: str, part: str) -> None:
    """Append the rest of ``url`` to ``part`` (a Range request from its current size), with progress on stderr."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # nothing left to fetch: the part file is already complete
            return
        raise UserError(f"{url}: download failed (HTTP {exc.code} {exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"{url}: cannot be reached ({getattr(exc, 'reason', exc)})") from None
    with response:
        resumed = response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
        done = have if resumed else 0
        with open(part, "ab" if resumed else "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                done += len(chunk)
                if total:
                    sys.stderr.write(f"\rdownload: {done / 2 ** 20:.1f} / {total / 2 ** 20:.1f} MB")
        sys.stderr.write("\n")


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
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the download folder ({exc.strerror})") from None
    part = os.path.join(folder, f"{key}.zip.part")
    print(f"downloading {key} from {url} ({source.licence})")
    _fetch(url, part)
    if md5 and _md5(part) != md5.lower():  # as Zenodo and md5sum print it, or in capitals
        os.remove(part)  # a corrupt archive cannot be resumed: start afresh next time
        raise UserError(f"{part}: MD5 differs from the published {md5}; removed, run the download again")
    try:
        with zipfile.ZipFile(part) as archive:
            broken = archive.testzip()
            if broken:
                raise UserError(f"{part}: member {broken} is corrupt")
            wavs = [n for n in archive.namelist() if n.lower().endswith(".wav")]
            if md5 is None and len(wavs) != source.wav_files:  # without a checksum, the count is the check
                raise UserError(f"{part}: holds {len(wavs)} wav files, a complete {key} has {source.wav_files}")
            staging = tempfile.mkdtemp(prefix=f".{key}.", dir=folder)
            try:
                archive.extractall(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except zipfile.BadZipFile:
        raise UserError(f"{part}: not a complete zip archive; run the download again to resume it") from None
    os.replace(staging, target)
    os.remove(part)
    print(f"unpacked {len(wavs)} wav files to {target}")
    print(f"next: python main.py --mode extract --data {key} --wav_path {target}")
    return target

