"""Download a file into a cache folder: checksum verified, written atomically, resumable.

The bytes go to ``<dest>.part``; an interrupted transfer leaves that file behind and the next call
asks the server for the rest (HTTP Range), restarting from zero when the server does not resume.
Only a file whose checksum matches is renamed into place (after fsync), so ``dest`` is either absent
or complete and correct. The checksum is an MD5 (datasets) or a SHA-256 or a prefix of one
(torchvision names its weight files after the first 8 hex digits of their SHA-256 and publishes
nothing more, so that prefix is all there is to check, as ``torch.hub`` does).

What a server can do wrong is bounded: a redirect from https to http is refused; a body larger
than ``max_bytes`` (announced or received) is refused; the whole transfer has an overall deadline
besides the per-read ``timeout`` (a server trickling bytes cannot hang the client); the bytes
received before a stall or the deadline are kept for the next call to resume; and a ``.part`` that
already carries the right checksum is taken as complete, whatever the server's ``Content-Length``.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from resnet.atomic_files import fsync_dir
from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_READ = 1 << 16  # read1() returns what has arrived, up to this: a stall keeps every byte before it

DEADLINE_S = 3600.0
"""The default overall deadline of one download, in seconds (read at call time)."""


class NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, except one from https to http (the file would travel unencrypted)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url).scheme, urllib.parse.urlsplit(newurl).scheme
        if old == "https" and new != "https":
            raise ResNetError(f"cannot download {req.full_url}: redirected from https to {new} ({newurl}); refusing it")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(NoDowngradeRedirects)


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def md5sum(path: Path) -> str:
    return file_digest(path, "md5")


def checksum_mismatch(path: Path, md5: str | None = None, sha256: str | None = None) -> str:
    """``""`` if ``path`` matches, else what it has instead (``"MD5 <got>, expected <md5>"``).

    ``sha256`` may be a whole digest or a prefix of one; only its length is compared.
    """
    if md5 is not None and (got := md5sum(path)) != md5:
        return f"MD5 {got}, expected {md5}"
    if sha256 is not None and not (got := file_digest(path, "sha256")).startswith(sha256.lower()):
        return f"SHA-256 {got[: len(sha256)]}..., expected {sha256}..."
    return ""


def _finish(part: Path, dest: Path) -> Path:
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest


def download(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    *,
    sha256: str | None = None,
    timeout: float = 20.0,
    manual_hint: str = "",
    progress: bool = False,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` unless a file with the right checksum (``md5`` or ``sha256``) is there.

    ``sha256`` may be a prefix of the digest. ``manual_hint`` (where to put the file by hand) is added
    to every network error so an offline user knows what to do. ``progress`` shows a byte progress
    bar on a terminal. ``max_bytes`` caps the file's size (a larger ``Content-Length`` is refused
    before anything is written, a body growing past it is stopped and deleted); ``deadline`` caps
    the whole transfer in seconds (default :data:`DEADLINE_S`), ``timeout`` each read. Raises
    :class:`ResNetError` on network failure, an interrupted or overdue transfer (the partial file is
    kept for the next call to resume), an https-to-http redirect, an oversized body or a checksum
    mismatch (nothing is kept).
    """
    if md5 is None and sha256 is None:
        raise ValueError("download() needs an md5 or a sha256 to verify the file against")
    dest = Path(dest)
    if dest.is_file():
        wrong = checksum_mismatch(dest, md5, sha256)
        if not wrong:
            return dest
        logger.warning("%s: %s; deleted it, downloading it again", dest, wrong)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if have and not checksum_mismatch(part, md5, sha256):  # complete already (a server that over-announced)
        return _finish(part, dest)
    if max_bytes is not None and have > max_bytes:
        logger.warning("%s: %d bytes, more than the %d the file can have; deleted it", part, have, max_bytes)
        part.unlink()
        have = 0
    hint = f"; {manual_hint}" if manual_hint else ""
    limit = DEADLINE_S if deadline is None else deadline
    ends = time.monotonic() + limit
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = _OPENER.open(request, timeout=min(timeout, limit))
    except urllib.error.HTTPError as e:
        if e.code == 416:  # our partial file is not a prefix of theirs: start again
            part.unlink()
            return download(
                url,
                dest,
                md5,
                sha256=sha256,
                timeout=timeout,
                manual_hint=manual_hint,
                progress=progress,
                max_bytes=max_bytes,
                deadline=max(ends - time.monotonic(), 1.0),
            )
        raise ResNetError(f"cannot download {url}: HTTP {e.code}{hint}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ResNetError(f"cannot download {url} ({reason}){hint}") from None
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            logger.info("%s: server does not resume; downloading again from the start", url)
        mode = "ab" if resumed else "wb"
        start = have if resumed else 0
        announced = response.headers.get("Content-Length")
        expected = int(announced) if announced is not None and announced.isdigit() else None
        if max_bytes is not None and expected is not None and start + expected > max_bytes:
            raise ResNetError(
                f"cannot download {url}: the server announces {start + expected} bytes, more than the "
                f"{max_bytes} this file can have; refusing it{hint}"
            )
        logger.info("downloading %s to %s%s", url, dest, f" (resuming at {have} bytes)" if resumed else "")
        received = 0
        problem = ""
        too_big = False
        # disable=None: tqdm draws only on a terminal, so logs and pipes stay clean.
        bar = tqdm(
            total=start + expected if expected is not None else None,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            leave=False,
            disable=None if progress else True,
        )
        with open(part, mode) as out, bar:
            try:
                for block in iter(lambda: response.read1(_READ), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                    if max_bytes is not None and start + received > max_bytes:
                        too_big = True
                        break
                    if time.monotonic() > ends:
                        problem = f"past the {limit:g} s deadline"
                        break
            except (http.client.IncompleteRead, OSError) as e:
                problem = type(e).__name__
            # A connection closed early reads as a short body, not always as an exception.
            if not problem and not too_big and expected is not None and received < expected:
                problem = f"{received} of {expected} bytes"
            out.flush()
            os.fsync(out.fileno())
        if too_big:
            part.unlink()
            raise ResNetError(
                f"download of {url} stopped: the body grew past the {max_bytes} bytes this file can have; "
                f"deleted it{hint}"
            )
        if problem and not checksum_mismatch(part, md5, sha256):
            logger.warning("%s: %s, but the file is complete and verified", url, problem)
            problem = ""
        if problem and resumed and received == 0 and not problem.startswith("past"):
            part.unlink()  # the server sends nothing past what we have: resuming is a dead end
            raise ResNetError(
                f"download of {url} resumed at {have} bytes but the server sent none ({problem}); "
                f"deleted the partial file, run again to start over{hint}"
            )
        if problem:
            raise ResNetError(
                f"download of {url} interrupted after {part.stat().st_size} bytes ({problem}); "
                f"run again to resume{hint}"
            )
    wrong = checksum_mismatch(part, md5, sha256)
    if wrong:
        part.unlink()
        raise ResNetError(f"download of {url} is corrupt: {wrong}; deleted it, run again{hint}")
    return _finish(part, dest)
