"""How many threads torch's intra-op pool uses for a run, chosen on purpose.

torch starts one intra-op thread per logical core and lets them spin while they wait. When
something else needs a core (the app's window, another process, the other ranks of an
``accelerate launch``) the threads fight it: on 2 shared cores an SFT step took 0.8-0.9 s with
one thread and 4.9-7.4 s with two (bench/bench_threads.py measures this machine). The count is

1. ``training.threads`` when the project sets it;
2. else ``OMP_NUM_THREADS`` when the environment sets it (the user, a job scheduler or a
   launcher decided);
3. else the physical cores this process may use (its CPU affinity and cgroup quota), shared
   among the processes the launcher started on this machine, less one core for the app's
   window when the run is started from a worker thread (the app trains on a worker thread; its
   main thread draws the window), less the cores other processes keep busy as the run starts
   (sampled for a quarter second from /proc/stat, alone on Linux). Data loading takes no core of
   its own: batches are collated on the training thread between steps, with no loader processes.

It is never below 1, and the run's log says which rule chose it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
PROC_STAT = Path("/proc/stat")
GUI_CORES = 1  # left to the app's window when a run trains on a worker thread
BUSY_SAMPLE_S = 0.25


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count of a run and why (for the run's log)."""

    threads: int
    reason: str

    def describe(self) -> str:
        return f"torch uses {self.threads} intra-op thread{'s' if self.threads != 1 else ''} ({self.reason})"


def cgroup_cores(path: Path = CGROUP_CPU_MAX) -> float | None:
    """The CPU quota of this process's cgroup in cores, or None when it has none (or no cgroup v2)."""
    try:
        quota, period = path.read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def usable_physical_cores() -> int:
    """Physical cores this process may run on: psutil's physical count, scaled down to the share
    of logical CPUs its affinity allows (SMT siblings do not add a core's worth of matrix work),
    capped by a cgroup quota (containers)."""
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        allowed = logical
    cores = max(1, round(physical * min(allowed, logical) / logical))
    quota = cgroup_cores()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


def _busy_ticks() -> tuple[int, int]:
    """(ticks every CPU was busy, ticks this process used) since boot."""
    fields = [int(x) for x in PROC_STAT.read_text(encoding="ascii").splitlines()[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # less idle and iowait
    own = sum(os.times()[:2]) * os.sysconf("SC_CLK_TCK")
    return busy, int(own)


def busy_elsewhere(seconds: float = BUSY_SAMPLE_S) -> float | None:
    """Cores other processes keep busy right now (sampled over ``seconds``); None where /proc/stat
    cannot tell (not Linux)."""
    try:
        busy0, own0 = _busy_ticks()
        time.sleep(seconds)
        busy1, own1 = _busy_ticks()
    except (OSError, ValueError, IndexError):
        return None
    ticks = seconds * os.sysconf("SC_CLK_TCK")
    return max(0.0, (busy1 - busy0 - (own1 - own0)) / ticks)


def local_processes(environ: Mapping[str, str] = os.environ) -> int:
    """Processes of this run on this machine (torchrun and accelerate set LOCAL_WORLD_SIZE)."""
    try:
        return max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def started_in_app() -> bool:
    """A run started from a thread other than the main one shares its process with whatever the
    main thread runs: in the app, the window's event loop."""
    return threading.current_thread() is not threading.main_thread()


def choose_threads(setting: int | None = None, *, environ: Mapping[str, str] = os.environ,
                   in_app: bool | None = None, cores: int | None = None, busy: float | None = None) -> ThreadChoice:
    """The thread count by the rules of the module docstring. ``in_app``, ``cores`` and ``busy``
    (cores busy with other processes) default to what this machine shows now (tests and the thread
    benchmark pass their own)."""
    if setting is not None:
        return ThreadChoice(max(1, int(setting)), "training.threads in the project")
    from_env = environ.get("OMP_NUM_THREADS", "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return ThreadChoice(int(from_env), "OMP_NUM_THREADS in the environment")
    cores = usable_physical_cores() if cores is None else cores
    processes = local_processes(environ)
    in_app = started_in_app() if in_app is None else in_app
    share = cores // processes if processes > 1 else cores
    parts = [f"{cores} physical core{'s' if cores != 1 else ''}"]
    if processes > 1:  # the other processes are this run's: the launcher laid them out
        parts.append(f"shared by {processes} processes")
    if in_app:
        share -= GUI_CORES
        parts.append(f"{GUI_CORES} left to the app's window")
    if processes == 1:
        busy = busy_elsewhere() if busy is None else busy
        taken = round(busy) if busy is not None else 0
        if taken > 0:
            share -= taken
            parts.append(f"{busy:.1f} busy with other processes")
    return ThreadChoice(max(1, share), ", ".join(parts))


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op pool to the chosen size (process-wide, as torch's setting is)."""
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
