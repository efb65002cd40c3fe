"""Thread pinning and a record of the floating-point environment of a run.

Same seeds give bit-identical results on one machine. Across machines, the last bits of
float32 arithmetic depend on how sums are split (thread counts) and on which SIMD
kernels run (AVX-512 or AVX2 builds of numpy's, OpenBLAS's, MKL's and torch's
kernels); federated training then carries such differences from round to round
(``docs/reproducibility.md`` measures how far). :func:`pin_threads` fixes what can be
fixed from Python: one thread for torch, OpenMP and BLAS, in this process and in the
worker processes it starts. :func:`numerics_record` lists what cannot (library
versions, the SIMD level each library dispatched to) so a result can be matched with
the machine it came from.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Environment variables read by OpenMP, OpenBLAS and MKL when they load (and so by
#: worker processes started after :func:`pin_threads`).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(num_threads: int = 1) -> dict[str, Any]:
    """Run torch, OpenMP and BLAS on ``num_threads`` threads, here and in child processes.

    Sets :data:`THREAD_VARIABLES` (read when a library loads: libraries not loaded yet and
    every process started afterwards), limits the BLAS and OpenMP pools already loaded
    (threadpoolctl) and, if torch is imported, its intra-op threads. Does not import torch.

    Parameters
    ----------
    num_threads : int
        Threads per pool (default 1: the project's arrays are small, so one thread is as
        fast and its sums are always split the same way).

    Returns
    -------
    dict
        What was set: ``{"threads": n, "env": {...}, "torch_threads": n or None}``.
    """
    from qfl_gym.validation import check_int

    n = check_int("num_threads", num_threads, low=1, high=1024)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)  # the pools loaded so far (numpy's OpenBLAS, torch's OpenMP)
    torch_threads = None
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
        torch_threads = torch.get_num_threads()
    return {
        "threads": n,
        "env": {k: os.environ[k] for k in THREAD_VARIABLES},
        "torch_threads": torch_threads,
    }


def numerics_record() -> dict[str, Any]:
    """Versions, SIMD levels and thread counts that decide a run's last float bits.

    Imports numpy and torch. Keys: ``numpy``, ``numpy_simd`` (dispatched extensions),
    ``blas`` (threadpoolctl's view: library, architecture, threads), ``torch``,
    ``torch_cpu_capability`` (e.g. ``"AVX512"``, ``"AVX2"``), ``torch_threads``,
    ``cpu`` (model name) and the thread variables.
    """
    import numpy as np
    import torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    from threadpoolctl import threadpool_info

    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            names = (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
            cpu = next(names, "")
    except OSError:
        pass
    return {
        "numpy": np.__version__,
        "numpy_simd": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
        "blas": [
            {k: info.get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
            for info in threadpool_info()
        ],
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu,
        "env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
    }
