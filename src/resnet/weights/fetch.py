"""Where published weight files live, and getting one there: cache first, network last.

A file is looked for in ``<cache>/weights/`` (the project's cache root, ``$RESNET_CACHE`` etc.), then
in torch.hub's own cache (``$TORCH_HOME/hub/checkpoints``, where torchvision puts the same files),
and only then downloaded into ``<cache>/weights/`` (progress bar, HTTP Range resume, SHA-256 prefix
check, the table's size as a cap, an overall deadline, atomic rename:
:func:`resnet.data.download.download`). Every file found is checked against
the SHA-256 prefix in its name before it is used.
"""

from __future__ import annotations

import logging
from pathlib import Path

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


def verify(path: Path, entry: PublishedWeights) -> None:
    """Raise a one-line error if ``path`` does not carry ``entry``'s SHA-256 prefix."""
    wrong = checksum_mismatch(path, sha256=entry.sha256_prefix)
    if wrong:
        raise ResNetError(
            f"{path} is not {entry.name}'s file: {wrong} (torchvision names its files after "
            f"the first 8 hex digits of their SHA-256); download {entry.url} again"
        )


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
