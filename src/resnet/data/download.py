"""Download a file into a cache folder: checksum verified, written atomically, resumable.

The bytes go to ``<dest>.part``; an interrupted transfer leaves that file behind and the next call
asks the server for the rest (HTTP Range), restarting from zero when the server does not resume.
Only a file whose checksum matches is renamed into place (after fsync), so ``dest`` is either absent
or complete and correct. The checksum is an MD5 (datasets) or a SHA-256 or a prefix of one
(torchvision names its weight files after the first 8 hex digits of their SHA-256 and publishes
nothing more, so that prefix is all there is to check, as ``torch.hub`` does).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from resnet.errors import ResNetError
from resnet.files import fsync_dir

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


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


def download(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    *,
    sha256: str | None = None,
    timeout: float = 20.0,
    manual_hint: str = "",
    progress: bool = False,
) -> Path:
    """Fetch ``url`` to ``dest`` unless a file with the right checksum (``md5`` or ``sha256``) is there.

    ``sha256`` may be a prefix of the digest. ``manual_hint`` (where to put the file by hand) is added
    to every network error so an offline user knows what to do. ``progress`` shows a byte progress
    bar on a terminal. Raises :class:`ResNetError` on network failure, an interrupted transfer (the
    partial file is kept for the next call to resume) or a checksum mismatch (nothing is kept).
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
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    hint = f"; {manual_hint}" if manual_hint else ""
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # our partial file is not a prefix of theirs: start again
            part.unlink()
            return download(url, dest, md5, sha256=sha256, timeout=timeout, manual_hint=manual_hint, progress=progress)
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
        start = have if resumed else 0
        # disable=None: tqdm draws only on a terminal, so logs and pipes stay clean.
        bar = tqdm(
            total=start + int(expected) if expected is not None else None,
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
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (http.client.IncompleteRead, OSError) as e:
                problem = type(e).__name__
            # A connection closed early reads as a short body, not always as an exception.
            if not problem and expected is not None and received < int(expected):
                problem = f"{received} of {expected} bytes"
            out.flush()
            os.fsync(out.fileno())
        if problem:
            raise ResNetError(
                f"download of {url} interrupted after {part.stat().st_size} bytes ({problem}); "
                f"run again to resume{hint}"
            )
    wrong = checksum_mismatch(part, md5, sha256)
    if wrong:
        part.unlink()
        raise ResNetError(f"download of {url} is corrupt: {wrong}; deleted it, run again{hint}")
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest
