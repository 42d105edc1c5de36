"""A restricted unpickler for the official CIFAR python files.

The official batches are Python 2 pickles (protocol 2) of a dict of byte strings, lists of ints and
one uint8 numpy array. The only globals they reference are the three numpy names that rebuild an
array, plus, in files re-pickled by Python 3, ``_codecs.encode`` restricted to latin-1 strings;
anything else (``os.system``, ``builtins.eval``, ...) is refused before it can be called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from resnet.errors import ResNetError


def _latin1_bytes(text: object, encoding: object = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 uses it in protocol-2 pickles: bytes written as (str, "latin1").

    Only that one use is admitted: a string and the latin-1 codec, which maps each character to
    the byte of the same value; any other argument is refused rather than passed to a codec.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused global _codecs.encode with arguments other than (str, 'latin1')")
    return text.encode("latin1")


# The official files say numpy.core.multiarray; numpy >= 2 re-saves the same function as numpy._core.
# A genuine file re-pickled by Python 3 at protocol 2 also stores its byte strings via _codecs.encode.
_ALLOWED = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused persistent id")


def safe_load(data: bytes, source: str | Path) -> Any:
    """Unpickle ``data`` (the bytes of ``source``) admitting only what CIFAR files contain.

    Raises :class:`ResNetError` naming ``source`` for a refused global, a truncated file or
    anything that is not a pickle.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        if str(e).startswith("refused"):
            raise ResNetError(
                f"{source}: unsafe pickle, {e} (CIFAR files only contain numpy arrays, lists and strings)"
            ) from None
        raise ResNetError(f"{source}: truncated or not a CIFAR batch file (unreadable pickle: {e})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as e:
        raise ResNetError(f"{source}: truncated or not a CIFAR batch file ({type(e).__name__}: {e})") from None
