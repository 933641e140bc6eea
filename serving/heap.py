"""Memory the C heap holds but no longer uses, given back to the system.

glibc's malloc keeps freed pages in the process, so transient peaks stay in its RSS for good:
building an ONNX Runtime session parses the graph into buffers it frees again (the random
forest's 4.7 MB graph left 27 MB behind), dropped versions free their sessions, and a large
request body is parsed into copies (after one refused 12 MB ``/v2`` request, about 100 MB of lists
and bytes, the API worker's RSS stayed 74 MB higher without a trim and 37 MB with it).
``malloc_trim`` hands those pages back.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import sys


@functools.cache
def _malloc_trim() -> "ctypes._CFuncPtr | None":
    """glibc's ``malloc_trim``, from the process itself (``dlopen(NULL)``); None off Linux and on
    C libraries without it (musl), where nothing is trimmed."""
    if not sys.platform.startswith("linux"):
        return None
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def release_freed_memory(collect: bool = False) -> None:
    """Give the heap's free pages back to the system; ``collect``: collect Python's cycles first,
    so that objects only a cycle kept (a dropped model's sessions) are freed too. A syscall that
    walks the heap (a few milliseconds): never on the event loop."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
