"""Corpus download against a local HTTP server (never the internet): checksum, resume, unpack, errors."""

import hashlib
import http.server
import io
import os
import shutil
import threading
import urllib.request
import zipfile

import pytest

from timnet_ser.core.errors import UserError
from timnet_ser.data import download
from timnet_ser.main import main


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one in-memory archive, honouring 'Range: bytes=N-' as a real host does; logs the ranges asked."""

    payload = b""
    ranges: list = []

    def do_GET(self):
        if self.path == "/cut.zip":  # announces the whole archive, sends half of it and closes
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload[:len(self.payload) // 2])
            return
        if self.path == "/nolength.zip":  # resumes, but announces no length and sends only part of the rest
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.end_headers()
            self.wfile.write(self.payload[start:start + 100])
            return
        if self.path in ("/ftp.zip", "/file.zip"):
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1:1/speech.zip" if self.path == "/ftp.zip" else
                             "file:///etc/hostname")
            self.end_headers()
            return
        if self.path in ("/moved.zip", "/renamed.zip"):  # a mirror on another host; another name on this one
            host = "localhost" if self.path == "/moved.zip" else "127.0.0.1"
            self.send_response(302)
            self.send_header("Location", f"http://{host}:{self.server.server_port}/speech.zip")
            self.end_headers()
            return
        if self.path == "/unannounced.zip":  # the whole archive, its length not announced (the end: the close)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.payload)
            return
        if self.path == "/page.zip":  # a mirror's page in place of the archive
            body = b"<html>moved</html>" * 20
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.ranges.append(start)
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A server on 127.0.0.1 with a small zip of 4 wav-named members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(4):
            archive.writestr(f"Actor_0{i + 1}/03-01-05-01-01-01-0{i + 1}.wav", os.urandom(20000))
    RangeHandler.payload, RangeHandler.ranges = buffer.getvalue(), []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/speech.zip", hashlib.md5(RangeHandler.payload).hexdigest()
    httpd.shutdown()


def test_an_interrupted_download_resumes_verifies_and_unpacks(tmp_path, server, capsys):
    url, md5 = server
    half = len(RangeHandler.payload) // 2
    (tmp_path / "RAVDE.zip.part").write_bytes(RangeHandler.payload[:half])  # what an interrupted run left
    assert main(["--mode", "download", "--data", "RAVDE", "--url", url, "--md5", md5,
                 "--download_path", str(tmp_path)]) == 0
    assert RangeHandler.ranges == [half], "only the missing half was fetched"
    target = tmp_path / "RAVDE"
    assert sorted(os.listdir(target)) == ["Actor_01", "Actor_02", "Actor_03", "Actor_04"]
    assert sorted(os.listdir(tmp_path)) == ["RAVDE"], "no partial or staging file left"
    out = capsys.readouterr().out
    assert f"unpacked 4 wav files to {target}" in out and "--mode extract --data RAVDE" in out


def test_a_wrong_checksum_is_one_line_and_unpacks_nothing(tmp_path, server, capsys):
    url, _ = server
    assert main(["--mode", "download", "--data", "RAVDE", "--url", url, "--md5", "0" * 32,
                 "--download_path", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "RAVDE.zip.part: MD5 differs" in err[-1]
    assert os.listdir(tmp_path) == []


def test_without_a_checksum_the_file_count_is_checked(tmp_path, server, capsys):
    url, _ = server  # EMODB's host publishes no MD5: a 4-file archive is not EMO-DB's 535 files
    assert main(["--mode", "download", "--data", "EMODB", "--url", url, "--download_path", str(tmp_path)]) == 2
    assert "holds 4 wav files, a complete EMODB has 535" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "EMODB")


def test_unreachable_host_and_unknown_corpus(tmp_path, capsys):
    assert main(["--mode", "download", "--data", "RAVDE", "--url", "http://127.0.0.1:9/none.zip",
                 "--md5", "0" * 32, "--download_path", str(tmp_path)]) == 2
    assert "http://127.0.0.1:9/none.zip: cannot be reached" in capsys.readouterr().err
    assert main(["--mode", "download", "--data", "CASIA", "--download_path", str(tmp_path)]) == 2
    assert "no open download is known; downloadable: EMODB, RAVDE" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--url", "notaurl"], "--url notaurl: not an http:// or https:// address"),  # urllib's ValueError before
    (["--url", "ftp://127.0.0.1/x.zip"], "--url ftp://127.0.0.1/x.zip: not an http:// or https:// address"),
    (["--url", "http://127.0.0.1:9/x.zip", "--md5", "zz"], "--md5 zz: an MD5 checksum is 32 hexadecimal digits"),
])
def test_a_wrong_url_or_checksum_is_one_line_before_anything_is_made(tmp_path, capsys, flags, message):
    target = tmp_path / "corpora"
    assert main(["--mode", "download", "--data", "EMODB", *flags, "--download_path", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n" and not target.exists()


def test_a_transfer_cut_short_is_kept_to_resume_even_with_a_checksum(tmp_path, server, capsys):
    """The host closed early: the MD5 check then deleted what could have been resumed."""
    url, md5 = server
    cut = url.replace("speech.zip", "cut.zip")
    assert main(["--mode", "download", "--data", "RAVDE", "--url", cut, "--md5", md5,
                 "--download_path", str(tmp_path)]) == 2
    half = len(RangeHandler.payload) // 2
    assert (f"{cut}: the connection closed after {half} of {len(RangeHandler.payload)} bytes; run the download "
            "again to resume it") in capsys.readouterr().err
    assert (tmp_path / "RAVDE.zip.part").stat().st_size == half
    assert main(["--mode", "download", "--data", "RAVDE", "--url", url, "--md5", md5,
                 "--download_path", str(tmp_path)]) == 0  # the rest, from the whole file's address
    assert RangeHandler.ranges == [half] and sorted(os.listdir(tmp_path)) == ["RAVDE"]
    assert oct(os.stat(tmp_path / "RAVDE").st_mode & 0o777) != oct(0o700)  # mkdtemp's mode was kept


def test_a_whole_file_that_is_no_zip_is_removed_not_resumed_for_ever(tmp_path, server, capsys):
    url, _ = server
    page = url.replace("speech.zip", "page.zip")
    assert main(["--mode", "download", "--data", "EMODB", "--url", page, "--download_path", str(tmp_path)]) == 2
    assert "EMODB.zip.part: the whole file arrived and is not a zip archive" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_what_would_write_elsewhere_is_refused(tmp_path, server, capsys):
    """A link at the part file's name (the bytes went to its target), a file where the corpus folder goes (a
    traceback after the whole download), a redirect to ftp://, an archive entry outside its folder or a link."""
    url, md5 = server
    args = ["--mode", "download", "--data", "RAVDE", "--md5", md5, "--download_path", str(tmp_path)]
    victim = tmp_path.parent / f"{tmp_path.name}_victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / "RAVDE.zip.part")
    assert main([*args, "--url", url]) == 2
    assert "RAVDE.zip.part: a link; the download writes its file there itself" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    os.remove(tmp_path / "RAVDE.zip.part")
    (tmp_path / "RAVDE").write_text("x")
    assert main([*args, "--url", url]) == 2
    assert "RAVDE: a file (or a link) has the name the corpus' folder would take" in capsys.readouterr().err
    assert RangeHandler.ranges == [] and sorted(os.listdir(tmp_path)) == ["RAVDE"]
    os.remove(tmp_path / "RAVDE")
    assert main([*args, "--url", url.replace("speech.zip", "ftp.zip")]) == 2
    assert "ftp.zip: redirects to ftp://127.0.0.1:1/speech.zip, not an http:// or https:// address" in \
        capsys.readouterr().err
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Actor_01/a.wav", b"x" * 100)
        archive.writestr("../escaped.wav", b"x" * 100)
    RangeHandler.payload = buffer.getvalue()
    assert main(["--mode", "download", "--data", "RAVDE", "--md5", hashlib.md5(RangeHandler.payload).hexdigest(),
                 "--download_path", str(tmp_path), "--url", url]) == 2
    assert "RAVDE.zip.part: holds '../escaped.wav', an entry outside the archive's folder or a link" in \
        capsys.readouterr().err
    assert os.listdir(tmp_path) == [] and not (tmp_path.parent / "escaped.wav").exists()


def test_where_a_redirect_took_the_download_is_said(tmp_path, server, capsys):
    """Redirects to another host were followed without a word: the console named the address asked for only, and an
    archive without a published checksum came from wherever the redirect led. They are still followed (mirrors and
    Zenodo's storage are reached by them), and the address the archive came from is said, with its host where it
    differs; an archive served where it was asked is said once."""
    url, md5 = server
    port = url.split(":")[2].split("/")[0]
    args = ["--mode", "download", "--data", "RAVDE", "--md5", md5, "--download_path", str(tmp_path)]
    for name, said in [
        ("moved.zip", f"redirected: the archive comes from http://localhost:{port}/speech.zip (host localhost, not "
                      "127.0.0.1)\n"),
        ("renamed.zip", f"redirected: the archive comes from http://127.0.0.1:{port}/speech.zip\n"),
        ("speech.zip", ""),
    ]:
        asked = url.replace("speech.zip", name)
        assert main([*args, "--url", asked]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"downloading RAVDE from {asked} (CC BY-NC-SA 4.0; cite Livingstone and Russo, PLoS "
                              f"ONE 2018)\n{said}unpacked 4 wav files to {tmp_path / 'RAVDE'}\n"), out
        shutil.rmtree(tmp_path / "RAVDE")
    asked = url.replace("speech.zip", "file.zip")  # urllib's own refusal, before the program's (ftp: below)
    assert main([*args, "--url", asked]) == 2
    assert capsys.readouterr().err.endswith(f"error: {asked}: download failed (HTTP 302 Found - Redirection to "
                                            "url 'file:///etc/hostname' is not allowed)\n")
    assert os.listdir(tmp_path) == []


def test_a_resumed_answer_without_a_length_is_not_taken_for_the_whole_file(tmp_path, server, capsys):
    """Its length was taken to be the part already kept, so the file counted as whole: the resumable part was
    deleted as "not a zip archive"."""
    url, _ = server
    (tmp_path / "EMODB.zip.part").write_bytes(RangeHandler.payload[:1000])
    assert main(["--mode", "download", "--data", "EMODB", "--url", url.replace("speech.zip", "nolength.zip"),
                 "--download_path", str(tmp_path)]) == 2
    assert "EMODB.zip.part: not a complete zip archive; run the download again to resume it" in \
        capsys.readouterr().err
    assert (tmp_path / "EMODB.zip.part").stat().st_size == 1100  # kept, with what arrived


def test_an_archive_that_unpacks_to_far_more_than_it_holds_is_refused_before_unpacking(tmp_path, server, capsys,
                                                                                     monkeypatch):
    """A member of 0.1 MB that unpacked to 100 MB of zeros (a zip bomb) was taken, checksum and all; so would have
    been an archive whose members together unpack to more than any corpus."""
    url, _ = server
    args = ["--mode", "download", "--data", "RAVDE", "--download_path", str(tmp_path), "--url", url]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Actor_01/03-01-05-01-01-01-01.wav", os.urandom(20000))
        archive.writestr("Actor_01/03-01-05-01-01-01-02.wav", bytes(10 * 2 ** 20))  # 10 MB of zeros in 10 kB
    RangeHandler.payload = buffer.getvalue()
    assert len(RangeHandler.payload) < 50_000
    assert main([*args, "--md5", hashlib.md5(RangeHandler.payload).hexdigest()]) == 2
    assert capsys.readouterr().err.endswith(
        "RAVDE.zip.part: member 'Actor_01/03-01-05-01-01-01-02.wav' unpacks to 10485760 bytes from "
        f"{zipfile.ZipFile(buffer).getinfo('Actor_01/03-01-05-01-01-01-02.wav').compress_size}, more than 100 times "
        "as many, as no recording does (a zip bomb); removed, nothing unpacked\n")
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 50_000)  # the server's usual 4 members: 80,000 bytes
    server_payload = io.BytesIO()
    with zipfile.ZipFile(server_payload, "w") as archive:
        for i in range(4):
            archive.writestr(f"Actor_0{i + 1}/03-01-05-01-01-01-0{i + 1}.wav", os.urandom(20000))
    RangeHandler.payload = server_payload.getvalue()
    assert main([*args, "--md5", hashlib.md5(RangeHandler.payload).hexdigest()]) == 2
    assert capsys.readouterr().err.endswith("RAVDE.zip.part: unpacks to 80000 bytes, more than the 50000 any corpus "
                                            "stays under; removed, nothing unpacked\n")
    assert os.listdir(tmp_path) == []


def test_a_download_larger_than_any_corpus_archive_is_stopped(tmp_path, server, capsys, monkeypatch):
    """Nothing bounded the bytes fetched: a host could fill the disk. One announced above the bound is refused
    before a byte is written; one that announces no length is stopped once past it, and what arrived removed."""
    url, md5 = server
    monkeypatch.setattr(download, "MAX_ARCHIVE_BYTES", len(RangeHandler.payload) - 1)
    args = ["--mode", "download", "--data", "RAVDE", "--md5", md5, "--download_path", str(tmp_path)]
    assert main([*args, "--url", url]) == 2
    assert capsys.readouterr().err.endswith(f"error: {url}: announces {len(RangeHandler.payload)} bytes, more than "
                                            f"the {len(RangeHandler.payload) - 1} any corpus archive stays under; "
                                            "nothing downloaded\n")
    assert os.listdir(tmp_path) == []
    unannounced = url.replace("speech.zip", "unannounced.zip")
    assert main([*args, "--url", unannounced]) == 2
    assert capsys.readouterr().err.endswith(f"error: {unannounced}: sent more than the {len(RangeHandler.payload) - 1} "
                                            "bytes any corpus archive stays under; stopped, and what arrived "
                                            "removed\n")
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(download, "MAX_ARCHIVE_BYTES", len(RangeHandler.payload))  # at the bound: taken
    assert main([*args, "--url", unannounced]) == 0 and sorted(os.listdir(tmp_path)) == ["RAVDE"]


def test_a_redirect_from_https_to_http_is_not_followed():
    """urllib followed a redirect from https:// to plain http://, where the archive could be changed on its way (EMO-DB's
    has no published checksum). Called as urllib calls it on a redirect; nothing is fetched."""
    redirects = download._WebRedirects()
    request = urllib.request.Request("https://127.0.0.1:9/speech.zip")
    with pytest.raises(UserError, match=r"^https://127.0.0.1:9/speech.zip: redirects to http://127.0.0.1:9/x.zip, from "
                                        r"https:// to plain http://, where the archive could be changed on its way; "
                                        r"not followed$"):
        redirects.redirect_request(request, None, 302, "Found", {}, "http://127.0.0.1:9/x.zip")
    for target in ("https://127.0.0.2:9/x.zip", "http://127.0.0.1:9/x.zip"):  # https to https, http to http: followed
        source = request if target.startswith("https") else urllib.request.Request("http://127.0.0.1:9/speech.zip")
        assert redirects.redirect_request(source, None, 302, "Found", {}, target).full_url == target
