"""Keep freed memory in the process (glibc), so large feature maps are not page-faulted in again and again.

glibc hands every freed block of more than a few MB back to the kernel; the next tensor of that size is then
first-touched page by page (a fault per 4 KB). MIRAGE allocates and frees hundreds of 10-50 MB feature maps per
forward pass, so on the CPU a training step at batch 8, 128×128, spent ~4 s of ~11 s in the kernel (800k page
faults, measured with `getrusage`). `retain_freed_memory()` tells glibc to serve such blocks from its heap and
to keep freed memory for reuse (the process's resident memory then stays near its peak instead of shrinking).
No library sets these allocator options; `mallopt` is the documented way. The CLI, the training script and the
Space call it; it is a no-op where glibc is not the C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h


@functools.cache
def retain_freed_memory() -> bool:
    """Serve blocks up to 32 MB from the heap, grow it 1 GB at a time (address space, not resident memory), and
    return freed memory to the kernel only above 2 GB of free heap. True when glibc took the settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TOP_PAD, 2**30), (_M_TRIM_THRESHOLD, 2**31 - 1))
    return all(mallopt(option, value) == 1 for option, value in settings)
