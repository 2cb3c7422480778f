"""Garbage-collector settings for a long-running dispatch process (the engine, the simulator).

At full rate the engine allocates a few dozen short-lived objects per message (PDU events,
outcomes, store rows), and CPython's default young-generation threshold (700 net allocations)
then runs a collection every few messages' worth of work: the measured cost was a large share
of the engine loop's CPU (a 100k-message run spent seconds in gen-0/1/2 collections). These
objects are acyclic and die young, so collecting them by reference counting alone is enough;
the cyclic collector still runs, just less often. ``gc.freeze()`` moves everything alive at
start-up (modules, config, the codec tables) out of the collector's sight for good, so the
full collections that do run only scan what the running engine holds.

Process-wide, so it is applied by the process's main job (``Engine.run``, the simulator's
``__main__``), never on import.
"""

from __future__ import annotations

import gc

#: Young-generation threshold used by ``tune``; the older generations keep Python's ratios.
DEFAULT_YOUNG_THRESHOLD = 50_000


def tune(young_threshold: int = DEFAULT_YOUNG_THRESHOLD) -> None:
    """Collect once, freeze the survivors, and raise the young-generation threshold.
    ``young_threshold <= 0`` leaves Python's defaults alone."""
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
