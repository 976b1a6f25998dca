"""Download helper against a loopback HTTP server (no test touches the network)."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from denoisezoo.datasets.download import (
    CORPORA,
    ChecksumError,
    DownloadError,
    RemoteFile,
    download_corpus,
    download_file,
    extract_archive,
)

PAYLOAD = bytes(range(256)) * 400  # 102 400 bytes


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Server:
    """Serves ``files`` with Range support; some paths misbehave on purpose.

    - ``/flaky/*``: the first request announces the full length, sends half and drops the connection.
    - ``/norange/*``: ignores Range (always 200 with the whole body).
    - ``/busy/*``: answers 503 to the first two requests.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None]] = []
        self.counts: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                server.log.append((self.path, rng))
                n = server.counts[self.path] = server.counts.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if self.path.startswith("/busy/") and n <= 2:
                    self.send_error(503)
                    return
                start = 0
                if rng and not self.path.startswith("/norange/"):
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path.startswith("/flaky/") and n == 1:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture()
def server():
    s = _Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_plain_download_with_checksums_and_progress(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    out = download_file(server.url("/a.bin"), tmp_path / "a.bin", sha256=_sha(PAYLOAD),
                        md5=hashlib.md5(PAYLOAD).hexdigest(), progress=True)
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    # an existing verified file is not fetched again
    download_file(server.url("/a.bin"), out, sha256=_sha(PAYLOAD), progress=False)
    assert len(server.log) == 1


def test_resume_after_mid_transfer_disconnect(server, tmp_path):
    server.files["/flaky/b.bin"] = PAYLOAD
    out = download_file(server.url("/flaky/b.bin"), tmp_path / "b.bin", sha256=_sha(PAYLOAD),
                        backoff=0.0, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert len(server.log) == 2
    assert server.log[0][1] is None
    assert server.log[1][1] == f"bytes={len(PAYLOAD) // 2}-"  # resumed, not restarted


def test_resume_from_existing_part_file(server, tmp_path):
    server.files["/c.bin"] = PAYLOAD
    (tmp_path / "c.bin.part").write_bytes(PAYLOAD[:1000])  # left by a killed process
    download_file(server.url("/c.bin"), tmp_path / "c.bin", sha256=_sha(PAYLOAD), progress=False)
    assert (tmp_path / "c.bin").read_bytes() == PAYLOAD
    assert server.log == [("/c.bin", "bytes=1000-")]


def test_complete_part_file_gets_416_and_is_kept(server, tmp_path):
    server.files["/d.bin"] = PAYLOAD
    (tmp_path / "d.bin.part").write_bytes(PAYLOAD)
    download_file(server.url("/d.bin"), tmp_path / "d.bin", sha256=_sha(PAYLOAD), progress=False)
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["/norange/e.bin"] = PAYLOAD
    (tmp_path / "e.bin.part").write_bytes(PAYLOAD[:500])
    download_file(server.url("/norange/e.bin"), tmp_path / "e.bin", sha256=_sha(PAYLOAD),
                  progress=False)
    assert (tmp_path / "e.bin").read_bytes() == PAYLOAD  # not 500 bytes duplicated


def test_bad_checksum_raises_and_leaves_nothing(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download_file(server.url("/f.bin"), tmp_path / "f.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        download_file(server.url("/f.bin"), tmp_path / "f.bin", md5="0" * 32, progress=False)


def test_transient_errors_are_retried_and_404_is_not(server, tmp_path):
    server.files["/busy/g.bin"] = PAYLOAD
    download_file(server.url("/busy/g.bin"), tmp_path / "g.bin", backoff=0.0, progress=False)
    assert (tmp_path / "g.bin").read_bytes() == PAYLOAD and server.counts["/busy/g.bin"] == 3
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("/nope.bin"), tmp_path / "nope.bin", backoff=0.0, progress=False)
    assert server.counts["/nope.bin"] == 1
    server.files["/busy/h.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="503"):
        download_file(server.url("/busy/h.bin"), tmp_path / "h.bin", retries=1, backoff=0.0,
                      progress=False)


def test_download_corpus_extracts_zip_and_tar_once(server, tmp_path):
    z = _zip_bytes({"clean_testset_wav/p1.wav": b"one", "clean_testset_wav/p2.wav": b"two"})
    t = _tar_bytes({"noise/n1.wav": b"three"})
    server.files["/vb.zip"], server.files["/dns.tar.gz"] = z, t
    files = (RemoteFile(server.url("/vb.zip"), "vb.zip", sha256=_sha(z)),
             RemoteFile(server.url("/dns.tar.gz"), "dns.tar.gz"))
    root = download_corpus("test", tmp_path / "corpus", files=files, progress=False)
    assert (root / "clean_testset_wav" / "p2.wav").read_bytes() == b"two"
    assert (root / "noise" / "n1.wav").read_bytes() == b"three"
    sidecar = root / "archives" / "dns.tar.gz.sha256"
    assert sidecar.read_text().split()[0] == _sha(t)
    n = len(server.log)
    download_corpus("test", root, files=files, progress=False)
    assert len(server.log) == n  # nothing fetched again
    with pytest.raises(KeyError, match="unknown corpus"):
        download_corpus("no-such-corpus", tmp_path)


def test_extract_refuses_escaping_members(tmp_path):
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(_zip_bytes({"../evil.txt": b"x"}))
    with pytest.raises(DownloadError, match="escapes"):
        extract_archive(bad_zip, tmp_path / "out")
    bad_tar = tmp_path / "bad.tar.gz"
    bad_tar.write_bytes(_tar_bytes({"../evil.txt": b"x"}))
    with pytest.raises(DownloadError, match="unsafe"):
        extract_archive(bad_tar, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    (tmp_path / "plain.txt").write_text("hi")
    with pytest.raises(DownloadError, match="not a zip or tar"):
        extract_archive(tmp_path / "plain.txt", tmp_path / "out")


def test_corpus_table_is_well_formed():
    assert {"voicebank-demand", "voicebank-demand-test", "dns4-dev-testset"} <= set(CORPORA)
    for files in CORPORA.values():
        for rf in files:
            assert rf.url.startswith("https://") and rf.url.endswith(rf.filename)
            assert rf.filename.endswith((".zip", ".tar.bz2"))
