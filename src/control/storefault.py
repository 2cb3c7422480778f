"""Store outages as the API shows them (``dispatch.store.faults`` is the engine's side).

While the engine's store cannot take writes (a full disk, a lost PostgreSQL), the engine's
``StoreHealth`` knows it and knows which campaigns it holds up. The API then:

* says so on each campaign it renders: ``heldUp`` is ``null``, or
  ``{"cause": "store", "message": ..., "since": ...}`` on a campaign that is Sending (or was
  found Sending) while the store is down: it sends nothing until the store is back and then
  resumes by itself (the banner's ``/diagnostics`` says the same for all of them);
* answers every write (any method but GET/HEAD/OPTIONS on a protected route, except routes
  that only read, such as the number lookup) at once with
  ``503 Service Unavailable``, the documented error shape and ``Retry-After``, instead of
  letting it queue behind the failing store; a write that meets a store fault on its own
  (the outage began while it ran, or the engine was not told yet) gets the same 503 from the
  error handler (``control.errors``) rather than a 500.

Reads keep working: they go to the reader connection, which a full disk does not stop.
"""

from __future__ import annotations

from typing import Any

from control.errors import store_unavailable
from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.store.faults import StoreHealth

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class StoreFaults:
    """The API's view of the engine's ``StoreHealth`` (``None``: no engine, never down)."""

    def __init__(self, health: StoreHealth | None, retry_after_s: int) -> None:
        self._health = health
        self.retry_after_s = retry_after_s

    @property
    def down(self) -> bool:
        return self._health is not None and self._health.down

    def check_write(self, method: str, reads_only: bool = False) -> None:
        """Raise the 503 for a write while the store is down. ``reads_only``: the route only
        reads whatever its method (a lookup POSTs its phone number to keep it out of URLs)."""
        if method not in _READ_METHODS and not reads_only and self.down:
            raise store_unavailable(self.retry_after_s)

    def held_up(self) -> HeldUp:
        """What to say on the campaigns of one response (one snapshot per response)."""
        if not self.down:
            return NOT_HELD
        assert self._health is not None
        st = self._health.statistics()
        since = st.failing_since.isoformat() if st.failing_since else None
        return HeldUp(frozenset(st.affected_campaigns), {
            "cause": "store", "since": since,
            "message": "Sending is paused while the store is unavailable "
                       f"({st.last_error}); it resumes by itself, nothing is lost"})


class HeldUp:
    """One response's snapshot: which campaigns a store outage holds up, and the note."""

    __slots__ = ("_ids", "_note")

    def __init__(self, ids: frozenset[int], note: dict[str, Any] | None) -> None:
        self._ids = ids
        self._note = note

    def of(self, campaign: Campaign) -> dict[str, Any] | None:
        if self._note is None:
            return None
        if campaign.status is CampaignStatus.SENDING or campaign.id in self._ids:
            return self._note
        return None


NOT_HELD = HeldUp(frozenset(), None)
