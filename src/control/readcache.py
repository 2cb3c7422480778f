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
* **counters** (progress, daily activity, KPI totals) by at most ``read_cache_s`` plus one
  store read: they change with every group commit while a campaign sends, and a progress bar
  half a second behind is what a polling UI shows anyway. An expired entry is re-read by one
  request while the others get the expired body (single flight): under load, an entry
  expiring costs one read instead of a queue of them on the reader thread, each request
  waiting for all the ones before it (a 60 ms latency spike every ``read_cache_s``).
* nothing while the store is faulty: ``heldUp`` must be current, so nothing is cached or
  served from the cache then.

Entries are keyed by the resource, its arguments and the negotiated media type, and bounded
(``MAX_ENTRIES``, oldest dropped first). Views that depend on the caller's rights (recipients,
numbers) are not cached. Across a cluster of engines each node has its own cache: a transition
made on another node is seen after at most ``read_cache_s``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Iterator

import falcon.asgi
from prometheus_client.core import CounterMetricFamily, Metric

from control.media import wants_msgpack
from control.storefault import StoreFaults

MAX_ENTRIES = 256

Rendered = tuple[bytes, str]  # body, content type


class ReadCache:
    """Rendered bodies by key, valid for ``ttl_s`` and while the generation is unchanged.

    One refresh at a time per key: while a request re-reads an expired entry, the others
    asking for it get the expired body (same generation only), so an entry expiring under
    load costs one store read, not one per request waiting on it."""

    def __init__(self, ttl_s: float, generation: Callable[[], int], *,
                 clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.generation = generation
        self._clock = clock
        self._max = max_entries
        self._entries: dict[Hashable, tuple[float, int, Rendered]] = {}
        self._refreshing: set[Hashable] = set()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: Hashable) -> Rendered | None:
        """The body to serve, or None: then the caller reads, renders and ``put``s it, and
        must call ``refreshed`` when done (``ViewCache.respond`` does all of it)."""
        entry = self._entries.get(key)
        if entry is not None:
            expires, generation, rendered = entry
            if generation == self.generation() and (
                    expires > self._clock() or key in self._refreshing):
                self.hits += 1
                return rendered
        self.misses += 1
        self._refreshing.add(key)
        return None

    def refreshed(self, key: Hashable) -> None:
        self._refreshing.discard(key)

    def put(self, key: Hashable, generation: int, rendered: Rendered) -> None:
        """Keep ``rendered``, computed from a store read that started at ``generation``."""
        if generation != self.generation():
            return  # a campaign changed while we read: this body may already be outdated
        entries = self._entries
        entries.pop(key, None)
        if len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[key] = (self._clock() + self.ttl_s, generation, rendered)


class ViewCache:
    """The resources' side of the cache: ``respond`` answers from it or runs the resource's
    own rendering and keeps the result. Off while the store is faulty (see the module doc)."""

    def __init__(self, cache: ReadCache, faults: StoreFaults) -> None:
        self.cache = cache
        self._faults = faults

    async def respond(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      key: tuple[Hashable, ...], render: Callable[[], Awaitable[None]]) -> None:
        """Serve ``key`` from the cache, or ``await render()`` (which fills ``resp``)."""
        cache = self.cache
        if not cache.enabled or self._faults.down:
            await render()
            return
        full = (*key, wants_msgpack(req))
        hit = cache.get(full)
        if hit is not None:
            resp.data, resp.content_type = hit
            return
        generation = cache.generation()
        try:
            await render()
        finally:
            cache.refreshed(full)
        if (not self._faults.down and resp.status_code == 200
                and isinstance(resp.data, bytes)):
            cache.put(full, generation, (resp.data, str(resp.content_type)))


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
