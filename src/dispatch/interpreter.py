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

Process-wide, so it is applied by the process's main job (``Engine.run``, the simulator's
``__main__``), never on import.
"""

from __future__ import annotations

import gc
import sys

#: Young-generation threshold used by ``tune``; the older generations keep Python's ratios.
DEFAULT_YOUNG_THRESHOLD = 50_000
#: GIL switch interval used by ``tune`` (Python's default is 0.005).
DEFAULT_SWITCH_INTERVAL_S = 0.0005


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
