"""The downloader against a local HTTP server on 127.0.0.1: never the real network."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from conftest import make_cifar, tar_folder
from resnet.data import cifar, load_dataset
from resnet.data.download import NoDowngradeRedirects, download
from resnet.errors import ResNetError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Server:
    """Serves ``files`` by path; ``cut_next`` sends only that many bytes of the next response, then hangs up.

    ``custom`` maps a path to a function that writes the whole response itself (a misbehaving server).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"/file.bin": PAYLOAD}
        self.ranges = True
        self.cut_next: int | None = None
        self.requests: list[str | None] = []
        self.custom: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.headers.get("Range"))
                if self.path in outer.custom:
                    try:
                        outer.custom[self.path](self)
                    except OSError:  # the client hung up: what is being tested
                        pass
                    self.close_connection = True
                    return
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if outer.ranges and self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut, outer.cut_next = outer.cut_next, None
                self.wfile.write(body[start:] if cut is None else body[start : start + cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_download_verifies_and_places_the_file(server, tmp_path):
    dest = download(f"{server.url}/file.bin", tmp_path / "cache" / "file.bin", MD5)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]  # no .part left behind
    download(f"{server.url}/file.bin", dest, MD5)
    assert len(server.requests) == 1  # a verified file is not fetched again


def test_corrupted_download_leaves_nothing(server, tmp_path):
    server.files["/file.bin"] = PAYLOAD[:-1] + b"X"
    dest = tmp_path / "file.bin"
    with pytest.raises(ResNetError, match=rf"file\.bin is corrupt: MD5 [0-9a-f]{{32}}, expected {MD5}") as e:
        download(f"{server.url}/file.bin", dest, MD5)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes(server, tmp_path):
    dest = tmp_path / "file.bin"
    server.cut_next = 300_000
    with pytest.raises(ResNetError, match=r"interrupted after 300000 bytes .*run again to resume"):
        download(f"{server.url}/file.bin", dest, MD5)
    assert not dest.exists() and (tmp_path / "file.bin.part").stat().st_size == 300_000
    download(f"{server.url}/file.bin", dest, MD5)
    assert server.requests == [None, "bytes=300000-"]  # the second request asked only for the rest
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "file.bin.part").exists()


def test_server_without_ranges_restarts(server, tmp_path):
    server.ranges = False
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes from another file")
    download(f"{server.url}/file.bin", tmp_path / "file.bin", MD5)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_offline_fails_at_once_with_where_to_put_files(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ResNetError, match=r"cannot download .*; put the file in /somewhere"):
        download(
            f"http://127.0.0.1:{port}/x.tar.gz", tmp_path / "x.tar.gz", MD5, manual_hint="put the file in /somewhere"
        )
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


def test_load_dataset_downloads_the_official_archive(server, tmp_path, monkeypatch):
    archive = tar_folder(make_cifar(tmp_path / "src"), tmp_path / "cifar-10-python.tar.gz").read_bytes()
    server.files["/cifar-10-python.tar.gz"] = archive
    fake = cifar.SOURCES["cifar10"].__class__(
        **{
            **cifar.SOURCES["cifar10"].__dict__,
            "url": f"{server.url}/cifar-10-python.tar.gz",
            "md5": hashlib.md5(archive).hexdigest(),
        }
    )
    monkeypatch.setitem(cifar.SOURCES, "cifar10", fake)
    b = load_dataset("cifar10", download=True, cache_dir=str(tmp_path / "cache"))
    assert (tmp_path / "cache" / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == archive
    assert torch.equal(b.train.images, load_dataset("cifar10", str(tmp_path / "src")).train.images)
    # A wrong checksum for the same URL: the error says where to put the files by hand.
    monkeypatch.setitem(cifar.SOURCES, "cifar10", fake.__class__(**{**fake.__dict__, "md5": "0" * 32}))
    with pytest.raises(ResNetError, match=r"corrupt.*put cifar-10-python\.tar\.gz .* in .*new"):
        load_dataset("cifar10", str(tmp_path / "new"), download=True)
    assert not any((tmp_path / "new").iterdir())


# --- what a server can do wrong (issue 22, item 14) ------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "followed"),
    [
        ("https://example.org/a.pth", "https://cdn.example.org/a.pth", True),
        ("http://example.org/a.pth", "https://example.org/a.pth", True),
        ("http://example.org/a.pth", "http://mirror.example.org/a.pth", True),
        ("https://example.org/a.pth", "http://example.org/a.pth", False),
        ("https://example.org/a.pth", "ftp://example.org/a.pth", False),
    ],
)
def test_a_redirect_from_https_to_http_is_refused(old, new, followed):
    handler = NoDowngradeRedirects()
    request = urllib.request.Request(old)
    if followed:
        assert handler.redirect_request(request, None, 302, "Found", {}, new).full_url == new
    else:
        with pytest.raises(ResNetError, match=rf"cannot download {old}: redirected from https to .*refusing it"):
            handler.redirect_request(request, None, 302, "Found", {}, new)


def _headers(h: BaseHTTPRequestHandler, length: int | None) -> None:
    h.send_response(200)
    if length is not None:
        h.send_header("Content-Length", str(length))
    h.end_headers()


def _announces_a_terabyte(h: BaseHTTPRequestHandler) -> None:
    _headers(h, 10**12)
    h.wfile.write(PAYLOAD)


def _endless(h: BaseHTTPRequestHandler) -> None:
    _headers(h, None)
    for _ in range(64):  # 16 MiB at most: bounded, but far past the cap
        h.wfile.write(PAYLOAD[: 1 << 18])


@pytest.mark.parametrize(
    ("serve", "message"),
    [
        (_announces_a_terabyte, r"announces 1000000000000 bytes, more than the 1153433 this file can have"),
        (_endless, r"the body grew past the 1153433 bytes this file can have; deleted it"),
    ],
)
def test_a_body_larger_than_the_file_can_be_is_refused(server, tmp_path, serve, message):
    server.custom["/big.bin"] = serve
    cap = int(len(PAYLOAD) * 1.1)
    with pytest.raises(ResNetError, match=message) as e:
        download(f"{server.url}/big.bin", tmp_path / "big.bin", MD5, max_bytes=cap, timeout=5)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, or what was written deleted


def test_a_content_length_longer_than_the_body_is_no_dead_end(server, tmp_path):
    def over_announced(h: BaseHTTPRequestHandler) -> None:
        _headers(h, len(PAYLOAD) + 1000)
        h.wfile.write(PAYLOAD)

    server.custom["/file.bin"] = over_announced
    dest = download(f"{server.url}/file.bin", tmp_path / "file.bin", MD5, timeout=5)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "file.bin.part").exists()
    # A complete .part from an earlier run (before this fix) is verified and taken, with no request.
    dest.rename(tmp_path / "file.bin.part")
    requests = len(server.requests)
    assert download(f"{server.url}/file.bin", dest, MD5).read_bytes() == PAYLOAD
    assert len(server.requests) == requests


def test_a_resume_the_server_answers_with_nothing_starts_over(server, tmp_path):
    def nothing_more(h: BaseHTTPRequestHandler) -> None:
        h.send_response(206)
        h.send_header("Content-Length", "1000")
        h.end_headers()

    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    server.custom["/file.bin"] = nothing_more
    with pytest.raises(ResNetError, match=r"resumed at 1000 bytes but the server sent none .*run again to start over"):
        download(f"{server.url}/file.bin", tmp_path / "file.bin", MD5, timeout=5)
    del server.custom["/file.bin"]
    assert download(f"{server.url}/file.bin", tmp_path / "file.bin", MD5).read_bytes() == PAYLOAD
    assert server.requests[-1] is None  # started over


def test_a_stall_mid_body_keeps_the_bytes_received(server, tmp_path):
    def stalls(h: BaseHTTPRequestHandler) -> None:
        _headers(h, len(PAYLOAD))
        h.wfile.write(PAYLOAD[:689_000])
        h.wfile.flush()
        time.sleep(3)

    server.custom["/file.bin"] = stalls
    with pytest.raises(ResNetError, match=r"interrupted after 689000 bytes \(TimeoutError\); run again to resume"):
        download(f"{server.url}/file.bin", tmp_path / "file.bin", MD5, timeout=0.5)
    assert (tmp_path / "file.bin.part").read_bytes() == PAYLOAD[:689_000]
    del server.custom["/file.bin"]
    assert download(f"{server.url}/file.bin", tmp_path / "file.bin", MD5).read_bytes() == PAYLOAD
    assert server.requests[-1] == "bytes=689000-"


def test_a_trickling_server_meets_the_overall_deadline(server, tmp_path):
    def trickles(h: BaseHTTPRequestHandler) -> None:
        _headers(h, len(PAYLOAD))
        for i in range(40):  # 1 byte every 0.1 s: each read is quick, the whole would take a day
            h.wfile.write(PAYLOAD[i : i + 1])
            h.wfile.flush()
            time.sleep(0.1)

    server.custom["/file.bin"] = trickles
    started = time.monotonic()
    with pytest.raises(
        ResNetError, match=r"interrupted after \d+ bytes \(past the 1 s deadline\); run again to resume"
    ):
        download(f"{server.url}/file.bin", tmp_path / "file.bin", MD5, timeout=5, deadline=1)
    assert time.monotonic() - started < 2.5
    kept = (tmp_path / "file.bin.part").read_bytes()
    assert 3 <= len(kept) < 40 and kept == PAYLOAD[: len(kept)]  # kept for the next call to resume
