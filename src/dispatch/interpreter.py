"""Interpreter settings for a long-running dispatch process (the engine, the simulator): the
garbage collector's thresholds and the GIL's switch interval.

At full rate the engine allocates a few dozen short-lived objects per message (PDU events,
outcomes, store rows), and CPython's default young-generation threshold (700 net allocations)
then runs a collection every few messages' worth of work: the measured cost was a large share
of the engine loop's CPU (a 100k-message run spent seconds in gen-0/1/2 collections). These
objects are acyclic and die young, so collecting them by reference counting alone is enough;
the cyclic collector still runs, just less often. ``gc.freeze()`` moves everything alive at
start-up (modules, config, the codec tables) out of the collector's sight for good, so the
full collections that do run only scan what the running engine holds.

The GIL switch interval: the store runs in worker threads (SQLite releases the GIL inside
each statement step), and a thread that wants the GIL back waits until the holder lets go,
at most ``sys.getswitchinterval()`` (5 ms by default) when the event loop is busy. A group
commit is thousands of steps, so those waits added up to most of a commit's wall time while
both threads sat well below a core each. 0.5 ms cuts them (e2e +6-18% side by side).

The allocator's arenas: glibc gives each thread that allocates while another holds the main
arena an arena of its own (up to 8 per core), and each keeps the memory its thread freed for
that thread. The engine's threads (the recipient parser, the store calls, the store process's
reader) then held ~10 MB between them over a 200k-recipient build and send; two arenas are the
usual setting for Python services (the GIL serialises nearly all of their allocations anyway):
the bench's RSS growth per recipient fell from 151-153 B to 132-138 B at 200k.

Process-wide, so it is applied by the process's main job (``Engine.run``, the simulator's
``__main__``), never on import.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

#: Young-generation threshold used by ``tune``; the older generations keep Python's ratios.
DEFAULT_YOUNG_THRESHOLD = 50_000
#: GIL switch interval used by ``tune`` (Python's default is 0.005).
DEFAULT_SWITCH_INTERVAL_S = 0.0005
#: Allocator arenas used by ``limit_malloc_arenas`` (glibc's default is 8 per core).
DEFAULT_MALLOC_ARENAS = 2

_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def tune(young_threshold: int = DEFAULT_YOUNG_THRESHOLD,
         switch_interval_s: float = DEFAULT_SWITCH_INTERVAL_S) -> None:
    """Collect once, freeze the survivors, raise the young-generation threshold, and set the
    GIL switch interval. ``young_threshold <= 0`` / ``switch_interval_s <= 0`` leave Python's
    defaults alone."""
    if switch_interval_s > 0:
        sys.setswitchinterval(switch_interval_s)
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)


def limit_malloc_arenas(arenas: int = DEFAULT_MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` for the threads that allocate from now on (see
    the module doc). Returns False where the C library has no ``mallopt`` (macOS) or ignores
    this one (musl), which then keep their own allocator's behaviour. ``MALLOC_ARENA_MAX`` in
    the environment wins."""
    if arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:  # the symbols the process already has: libc's, no library search at start-up
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
