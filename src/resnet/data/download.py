"""Download a file into a cache folder: checksum verified, written atomically, resumable.

The bytes go to ``<dest>.part``; an interrupted transfer leaves that file behind and the next call
asks the server for the rest (HTTP Range), restarting from zero when the server does not resume.
Only a file whose MD5 matches is renamed into place (after fsync), so ``dest`` is either absent or
complete and correct.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from resnet.errors import ResNetError
from resnet.files import fsync_dir

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | Path, md5: str, *, timeout: float = 20.0, manual_hint: str = "") -> Path:
    """Fetch ``url`` to ``dest`` unless a file with the right MD5 is already there.

    ``manual_hint`` (where to put the file by hand) is added to every network error so an offline
    user knows what to do. Raises :class:`ResNetError` on network failure, an interrupted transfer
    (the partial file is kept for the next call to resume) or a checksum mismatch (nothing is kept).
    """
    dest = Path(dest)
    if dest.is_file() and md5sum(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    hint = f"; {manual_hint}" if manual_hint else ""
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # our partial file is not a prefix of theirs: start again
            part.unlink()
            return download(url, dest, md5, timeout=timeout, manual_hint=manual_hint)
        raise ResNetError(f"cannot download {url}: HTTP {e.code}{hint}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ResNetError(f"cannot download {url} ({reason}){hint}") from None
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            logger.info("%s: server does not resume; downloading again from the start", url)
        mode = "ab" if resumed else "wb"
        logger.info("downloading %s to %s%s", url, dest, f" (resuming at {have} bytes)" if resumed else "")
        expected = response.headers.get("Content-Length")
        received = 0
        problem = ""
        with open(part, mode) as out:
            try:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    received += len(block)
            except (http.client.IncompleteRead, OSError) as e:
                problem = type(e).__name__
            # A connection closed early reads as a short body, not always as an exception.
            if not problem and expected is not None and received < int(expected):
                problem = f"{received} of {expected} bytes"
            out.flush()
            os.fsync(out.fileno())
        if problem:
            raise ResNetError(f"download of {url} interrupted after {part.stat().st_size} bytes ({problem}); "
                              f"run again to resume{hint}")
    got = md5sum(part)
    if got != md5:
        part.unlink()
        raise ResNetError(f"download of {url} is corrupt: MD5 {got}, expected {md5}; deleted it, run again{hint}")
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest
