"""Corpus download against a local HTTP server (never the internet): checksum, resume, unpack, errors."""

import hashlib
import http.server
import io
import os
import threading
import zipfile

import pytest

from timnet_ser.main import main


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one in-memory archive, honouring 'Range: bytes=N-' as a real host does; logs the ranges asked."""

    payload = b""
    ranges: list = []

    def do_GET(self):
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
