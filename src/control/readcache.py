"""A short-lived cache of rendered campaign views (list, detail, KPI) on the engine's loop.

A Message Center polls the same few pages (the campaign list, the detail of the campaigns
being watched) from many browsers at once, while the engine dispatches at full rate on the
same loop and the same core. Rendering a page of 50 campaigns costs the loop ~2 ms; serving
the bytes rendered a moment ago costs nothing. So a rendered body is kept for
``[control] read_cache_s`` (default 0.5 s) and served to every identical request in that time.

What may be stale, and what may not:

* **status and metadata never**: an entry remembers the store's campaign generation
  (``AsyncStore.campaigns_generation``, bumped by every campaign create and lifecycle
  transition, from the API or the engine) read *before* its store read started; an entry
  whose generation is not the current one is never served. A pause answered 200 is seen by
  the next detail read.
* **counters** (progress, daily activity, KPI totals) by at most ``read_cache_s``: they change
  with every group commit while a campaign sends, and a progress bar half a second behind is
  what a polling UI shows anyway.
* nothing while the store is faulty: ``heldUp`` must be current, so nothing is cached or
  served from the cache then.

Entries are keyed by the resource, its arguments and the negotiated media type, and bounded
(``MAX_ENTRIES``, oldest dropped first). Views that depend on the caller's rights (recipients,
numbers) are not cached. Across a cluster of engines each node has its own cache: a transition
made on another node is seen after at most ``read_cache_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator

import falcon.asgi
from prometheus_client.core import CounterMetricFamily, Metric

from control.media import wants_msgpack
from control.storefault import StoreFaults

MAX_ENTRIES = 256

Rendered = tuple[bytes, str]  # body, content type


class ReadCache:
    """Rendered bodies by key, valid for ``ttl_s`` and while the generation is unchanged."""

    def __init__(self, ttl_s: float, generation: Callable[[], int], *,
                 clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.generation = generation
        self._clock = clock
        self._max = max_entries
        self._entries: dict[Hashable, tuple[float, int, Rendered]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: Hashable) -> Rendered | None:
        entry = self._entries.get(key)
        if entry is not None:
            expires, generation, rendered = entry
            if expires > self._clock() and generation == self.generation():
                self.hits += 1
                return rendered
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, generation: int, rendered: Rendered) -> None:
        """Keep ``rendered``, computed from a store read that started at ``generation``."""
        if generation != self.generation():
            return  # a campaign changed while we read: this body may already be outdated
        entries = self._entries
        entries.pop(key, None)
        if len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[key] = (self._clock() + self.ttl_s, generation, rendered)

    def clear(self) -> None:
        self._entries.clear()


class ViewCache:
    """The resources' side of the cache: a request either is answered from it (``serve``) or
    computes its answer and offers it (``generation`` before the store read, ``keep`` after
    rendering). Off while the store is faulty (see the module doc)."""

    def __init__(self, cache: ReadCache, faults: StoreFaults) -> None:
        self.cache = cache
        self._faults = faults

    def _key(self, req: falcon.asgi.Request, key: tuple[Hashable, ...]) -> Hashable:
        return (*key, wants_msgpack(req))

    def serve(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
              key: tuple[Hashable, ...]) -> bool:
        """Answer from the cache; False when the caller must compute the answer."""
        if not self.cache.enabled or self._faults.down:
            return False
        hit = self.cache.get(self._key(req, key))
        if hit is None:
            return False
        resp.data, resp.content_type = hit
        return True

    def generation(self) -> int:
        return self.cache.generation()

    def keep(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
             key: tuple[Hashable, ...], generation: int) -> None:
        if (self.cache.enabled and not self._faults.down and resp.status_code == 200
                and isinstance(resp.data, bytes)):
            self.cache.put(self._key(req, key), generation, (resp.data, str(resp.content_type)))


class ReadCacheCollector:
    """``dispatch_api_read_cache_lookups_total{result="hit"|"miss"}``, read at scrape time."""

    def __init__(self, cache: ReadCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("dispatch_api_read_cache_lookups",
                                     "Campaign list/detail/KPI requests answered from the "
                                     "API's read cache (hit) or read from the store (miss).",
                                     labels=["result"])
        family.add_metric(["hit"], self._cache.hits)
        family.add_metric(["miss"], self._cache.misses)
        yield family
