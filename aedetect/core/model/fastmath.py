"""Two speed settings for PyTorch's convolutions: memory format and denormal floats.

Memory format: oneDNN's CPU convolutions and cuDNN's tensor cores are faster on channels_last
(NHWC) tensors than on PyTorch's default NCHW. :func:`preferred_memory_format` says which
layout a model should use; training and every model file load apply it.

Denormal floats, flushed to zero while aedetect trains on the CPU. Why: a sigmoid output drives
background pixels towards 0, and its values and gradients fall into the denormal range (below
about 1e-38 in float32), which x86 CPUs compute in microcode, far slower. GPUs flush them in
hardware, so this changes only CPU speed; the values lost are far under anything an 8- or
16-bit image can express. Both speed-ups are measured in docs/benchmarks/speed.md.

The catch: the flag lives in each thread's MXCSR register, and ``torch.set_flush_denormal``
sets it only for the calling thread. PyTorch's OpenMP worker threads, once started, keep
their own. So the flag is set inside one OpenMP parallel region of the very libgomp PyTorch
loaded, which runs a tiny callback on every pool thread. Where that is not possible (no
libgomp: macOS, Windows, a TBB build), only the calling thread is set, which still covers
pool threads started afterwards. The caller's setting is put back when the block ends.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import torch

log = logging.getLogger("aedetect")


def preferred_memory_format(arch: str, device: torch.device | str, enabled: bool = True) -> torch.memory_format:
    """channels_last for convolutional models on the CPU or CUDA (see the module docstring);
    the default layout for the fully-connected ``mlp`` and for other devices (MPS)."""
    kind = torch.device(device).type
    if enabled and arch != "mlp" and kind in ("cpu", "cuda"):
        return torch.channels_last
    return torch.contiguous_format
_Body = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def thread_flushes() -> bool:
    """Whether the calling thread flushes denormals (probed: PyTorch has no getter)."""
    return float(torch.tensor([1e-310], dtype=torch.float64) * 1.0) == 0.0


@lru_cache(maxsize=1)
def _libgomp() -> ctypes.CDLL | None:
    """The libgomp that PyTorch itself loaded (another copy would have another pool)."""
    if not sys.platform.startswith("linux") or not torch.backends.openmp.is_available():
        return None
    try:
        with open("/proc/self/maps") as f:
            paths = sorted(set(re.findall(r"(/\S*libgomp[^/\s]*\.so[^/\s]*)", f.read())))
        if not paths:
            return None
        # Another package may have loaded the system's libgomp too: PyTorch's own comes first.
        torch_dir = os.path.dirname(os.path.realpath(torch.__file__))
        paths.sort(key=lambda p: not os.path.realpath(p).startswith(torch_dir))
        lib = ctypes.CDLL(paths[0])
        lib.GOMP_parallel.argtypes = [_Body, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        lib.GOMP_parallel.restype = None
        return lib
    except (OSError, AttributeError) as e:  # pragma: no cover - depends on the platform
        log.debug("libgomp not usable for the denormal flag: %s", e)
        return None


def set_flush_denormal_everywhere(on: bool) -> list[bool]:
    """Set the flag on the calling thread and every OpenMP pool thread; return what each
    thread reports afterwards (one entry for the calling thread where libgomp is absent)."""
    torch.set_flush_denormal(on)
    lib = _libgomp()
    if lib is None:
        return [thread_flushes()]
    states: list[bool] = []
    lock = threading.Lock()

    def body(_: int | None) -> None:
        torch.set_flush_denormal(on)
        with lock:
            states.append(thread_flushes())

    callback = _Body(body)  # kept referenced until GOMP_parallel returns
    lib.GOMP_parallel(callback, None, torch.get_num_threads(), 0)
    return states


@contextmanager
def flush_denormals() -> Iterator[bool]:
    """Flush denormals to zero on every CPU compute thread inside the block; yields whether
    every thread took the flag (False on CPUs without FTZ/DAZ, where nothing changes)."""
    was = thread_flushes()
    states = set_flush_denormal_everywhere(True)
    try:
        yield all(states)
    finally:
        set_flush_denormal_everywhere(was)
