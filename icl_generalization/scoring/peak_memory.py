"""Peak memory of one block of work, on CUDA or on a Linux CPU, and how it was measured.

Needs only torch and the standard library, so ``scripts/gpu_check.py`` loads it on a machine without the
package's other dependencies.

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, less what was allocated at the
  start (tensors only; the caching allocator's reserve is not counted).
- CPU on Linux: the process's peak resident set (``VmHWM``), reset by writing 5 to ``/proc/self/clear_refs``
  at the start, less the resident set then; freed heap is handed back first (``malloc_trim``), so memory kept
  from earlier work does not hide this block's. Resident pages include everything the process touches, so the
  figure is an upper bound on what the block allocated, to a page.
- Elsewhere: ``resource.getrusage``'s lifetime peak, which cannot be reset; the figure is the peak's growth
  during the block (0 when an earlier block peaked higher), and the method says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Peak:
    """Filled in when the ``peak_memory`` block ends."""

    method: str = ""
    mib: float = field(default=0.0)


def _status_kib(key: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _trim_heap() -> None:
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(AttributeError, OSError):  # not glibc: nothing to hand back this way
            ctypes.CDLL(name).malloc_trim(0)


def _can_reset_rss() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        _status_kib("VmHWM")
    except (OSError, KeyError):
        return False
    return True


@contextmanager
def peak_memory(device: torch.device) -> Iterator[Peak]:
    """Measure the peak memory the block adds on ``device`` (see the module docstring for the methods)."""
    peak = Peak()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield peak
        torch.cuda.synchronize(device)
        peak.method = "torch.cuda.max_memory_allocated above the allocation at the start"
        peak.mib = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    _trim_heap()
    if sys.platform == "linux" and _can_reset_rss():
        start_kib = _status_kib("VmRSS")
        yield peak
        peak.method = "peak RSS (VmHWM, reset through /proc/self/clear_refs) above the RSS at the start"
        peak.mib = (_status_kib("VmHWM") - start_kib) / 1024
        return
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    yield peak
    peak.method = "growth of the process's lifetime peak RSS (getrusage; not resettable)"
    peak.mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - before) / 2**20
