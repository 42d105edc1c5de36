"""Where published weight files live, and getting one there: cache first, network last.

A file is looked for in ``<cache>/weights/`` (the project's cache root, ``$RESNET_CACHE`` etc.), then
in torch.hub's own cache (``$TORCH_HOME/hub/checkpoints``, where torchvision puts the same files),
and only then downloaded into ``<cache>/weights/`` (progress bar, HTTP Range resume, SHA-256 prefix
check, the table's size as a cap, an overall deadline, atomic rename:
:func:`resnet.data.download.download`). Every file found is checked against
the SHA-256 prefix in its name before it is used.

The prefix (32 bits) catches corruption, not a substituted file: the first time a file is verified
its whole SHA-256 is recorded in ``<cache>/weights-sha256.json`` (trust on first use), and every
later use checks the whole digest against it. The bytes that are hashed are the bytes that are
loaded (:func:`verified_bytes`): the file is read once, so it cannot change between check and use.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from resnet.atomic_files import atomic_write
from resnet.data.cache import default_cache_dir
from resnet.data.download import checksum_mismatch, download
from resnet.errors import ResNetError
from resnet.weights.published import PublishedWeights

logger = logging.getLogger(__name__)


def weights_dir(cache_dir: str | Path | None = None) -> Path:
    """``<cache_dir>/weights``, the cache root defaulting to :func:`resnet.data.cache.default_cache_dir`."""
    return Path(cache_dir or default_cache_dir()) / "weights"


def torch_hub_dir() -> Path:
    """torch.hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), read but never written."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_file(entry: PublishedWeights, cache_dir: str | Path | None = None) -> Path | None:
    """The file of ``entry`` if it is in our cache or torch.hub's (not checked against its hash here)."""
    for folder in (weights_dir(cache_dir), torch_hub_dir()):
        if (folder / entry.file).is_file():
            return folder / entry.file
    return None


PINS = "weights-sha256.json"  # beside weights/, which holds the weight files only


def _pins(cache_dir: str | Path | None) -> tuple[Path, dict[str, str]]:
    path = weights_dir(cache_dir).parent / PINS
    try:
        pins = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        raise ResNetError(
            f"{path}: the recorded SHA-256 digests are unreadable; delete the file to record "
            "them again from the files as they are now"
        ) from None
    if not isinstance(pins, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pins.items()):
        raise ResNetError(f"{path}: not a JSON object of file names and SHA-256 digests; delete it to start over")
    return path, pins


def read_hashed(path: Path) -> tuple[bytes, str]:
    """The bytes of ``path``, read once, and their SHA-256 (hex): what is checked is what is loaded."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ResNetError(f"cannot read {path}: {e.strerror or e}") from None
    return data, hashlib.sha256(data).hexdigest()


def verified_bytes(path: Path, entry: PublishedWeights, cache_dir: str | Path | None = None) -> bytes:
    """The bytes of ``path``, read once and checked: the SHA-256 prefix of the file name, and the whole
    digest recorded the first time this file was verified (recorded now if it is the first time)."""
    data, digest = read_hashed(path)
    if not digest.startswith(entry.sha256_prefix):
        raise ResNetError(
            f"{path} is not {entry.name}'s file: SHA-256 {digest[:8]}..., expected {entry.sha256_prefix}... "
            f"(torchvision names its files after the first 8 hex digits of their SHA-256); download {entry.url} again"
        )
    pins_path, pins = _pins(cache_dir)
    pinned = pins.get(entry.file)
    if pinned is not None and pinned != digest:
        raise ResNetError(
            f"{path} is not the {entry.name} file verified before: SHA-256 {digest}, recorded {pinned} in "
            f"{pins_path}; its name matches but its contents differ (a substituted file?)"
        )
    if pinned is None:
        try:
            atomic_write(
                pins_path, (json.dumps({**pins, entry.file: digest}, indent=1, sort_keys=True) + "\n").encode()
            )
        except ResNetError as e:  # a read-only cache still loads the checked file, without the record
            logger.warning("%s: the SHA-256 of %s was not recorded (%s)", pins_path, entry.file, e)
    return data


def fetch(entry: PublishedWeights, cache_dir: str | Path | None = None, *, progress: bool = True) -> Path:
    """The verified local file of ``entry``: from the cache without network, else downloaded into it.

    A corrupt file in our cache is deleted and downloaded again; one in torch.hub's cache is left
    alone (it is not ours) and ours is used instead. Offline, the error names the URL and where to
    put the file by hand.
    """
    ours = weights_dir(cache_dir) / entry.file
    hub = torch_hub_dir() / entry.file
    if hub.is_file() and not ours.is_file():
        wrong = checksum_mismatch(hub, sha256=entry.sha256_prefix)
        if not wrong:
            logger.debug("%s: using torch.hub's copy %s", entry.name, hub)
            return hub
        logger.warning("%s: %s; ignoring it", hub, wrong)
    # download() returns a verified file at once, replaces a corrupt one, and resumes a .part.
    return download(
        entry.url,
        ours,
        sha256=entry.sha256_prefix,
        progress=progress,
        max_bytes=entry.max_bytes,
        manual_hint=f"offline? download it by hand and put it at {ours}",
    )
