"""The engine's /diagnostics report: what the Message Center's banner needs to say.

PRODUCT.md (000): while the core is down the UI disables creating and starting campaigns; the
banner says whether the core, its store and its SMPP binds are up. So the report answers:

* ``core``: "up" (the process answered), and the active fast-path implementation;
* ``store``: reachable or not, measured now by a cheap read through the store's own thread
  slot under ``store_timeout_s`` (a store that hangs reports ``reachable: false`` rather than
  hanging the request), plus the group-commit writer's queue and last commit time;
* ``esmes``: per ESME route, binds up/configured, ``up`` (at least one sending bind), the last
  bind error (e.g. a wrong password), window use, queue, throttling;
* ``campaigns``: active counts, and the campaigns that do not progress, with why: paused by the
  daily window, paused by a user, or *stalled by a fault* (Sending on a route with no bind up:
  the engine keeps them Sending and they resume by themselves when a bind comes back);
* ``status``: "ok" when everything is up, "degraded" when some ESME has binds down or the store
  is slow to answer, "down" when the store is unreachable or no ESME has a bind up.

Campaign lists are capped at ``MAX_LISTED`` entries each (with the full count next to them),
and name campaigns by their external UUID only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

from dispatch import fastpath
from dispatch.campaigns.model import Campaign, CampaignStatus, PausedBy

if TYPE_CHECKING:
    from dispatch.engine.core import Engine

MAX_LISTED = 50
#: A store answering slower than this makes the report "degraded".
SLOW_STORE_S = 1.0


async def _probe_store(engine: Engine, timeout_s: float) -> tuple[dict[str, Any],
                                                                  list[Campaign] | None]:
    """One read of the active campaigns: proves the store answers and feeds the lists."""
    store = engine.store
    if store is None:
        return {"reachable": False, "error": "store not open"}, None
    started = time.monotonic()
    try:
        with trio.fail_after(timeout_s):
            campaigns = await store.active_campaigns()
    except trio.TooSlowError:
        return {"reachable": False,
                "error": f"no answer within {timeout_s:g} s"}, None
    except Exception as exc:  # any store failure means unreachable for the banner
        return {"reachable": False, "error": f"{type(exc).__name__}: {exc}"[:200]}, None
    return {"reachable": True, "latencySeconds": round(time.monotonic() - started, 4)}, campaigns


def _esmes(engine: Engine) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, route in list(engine.routes.items()):
        st = route.pool.statistics()
        rs = route.statistics()
        out[name] = {
            "up": st.binds_up > 0 and st.window_capacity > 0,
            "bindsUp": st.binds_up,
            "bindsConfigured": st.binds_configured,
            "lastBindError": st.last_bind_error or rs.last_bind_error or None,
            "bindFailures": st.bind_failures,
            "reconnects": st.reconnects,
            "inFlight": st.in_flight,
            "windowSize": st.window_capacity,
            "queued": st.queued,
            "throttled": st.throttled,
            "tpsLimit": st.tps_limit,
            "campaignsSending": rs.campaigns,
        }
    return out


def _campaigns(campaigns: list[Campaign], esmes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    window: list[str] = []
    user: list[str] = []
    stalled: list[dict[str, Any]] = []
    for c in campaigns:
        by_status[c.status.value] = by_status.get(c.status.value, 0) + 1
        if c.status is CampaignStatus.PAUSED:
            (window if c.paused_by is PausedBy.WINDOW else user).append(str(c.external_id))
        elif c.status is CampaignStatus.SENDING:
            route = esmes.get(c.esme)
            if route is None:
                stalled.append({"campaign": str(c.external_id), "esme": c.esme,
                                "reason": "unknown ESME route"})
            elif not route["up"]:
                stalled.append({"campaign": str(c.external_id), "esme": c.esme,
                                "reason": route["lastBindError"] or "no bind up"})
    return {
        "active": len(campaigns),
        "byStatus": by_status,
        "pausedByWindow": {"count": len(window), "campaigns": window[:MAX_LISTED]},
        "pausedByUser": {"count": len(user), "campaigns": user[:MAX_LISTED]},
        "stalledByFault": {"count": len(stalled), "campaigns": stalled[:MAX_LISTED]},
    }


async def engine_diagnostics(engine: Engine, *, store_timeout_s: float = 2.0) -> dict[str, Any]:
    """The report (see the module doc); never raises for a component that is down."""
    store, campaigns = await _probe_store(engine, store_timeout_s)
    writer = engine.writer.statistics() if engine.writer is not None else None
    backend = (getattr(engine.store.sync, "backend", None)
               or type(engine.store.sync).__name__.removesuffix("Store").lower()
               if engine.store is not None else "none")
    store.update({"backend": backend,
                  "queuedWrites": writer.queued if writer else 0,
                  "lastCommitSeconds": writer.last_commit_s if writer else 0.0})
    if backend == "sqlite":  # a file path; a server DSN may hold a password: never shown
        store["path"] = engine.config.store.path
    esmes = _esmes(engine)
    report: dict[str, Any] = {
        "core": "up",
        "fastpath": fastpath.IMPLEMENTATION,
        "store": store,
        "esmes": esmes,
        "scheduler": {"activeCampaigns": engine.statistics().campaigns_active,
                      "building": engine.statistics().builders},
    }
    if campaigns is not None:
        report["campaigns"] = _campaigns(campaigns, esmes)
    routes_up = [e["up"] for e in esmes.values()]
    if not store["reachable"] or not any(routes_up):
        status = "down"
    elif not all(routes_up) or any(e["bindsUp"] < e["bindsConfigured"] for e in esmes.values()) \
            or store.get("latencySeconds", 0.0) > SLOW_STORE_S:
        status = "degraded"
    else:
        status = "ok"
    report["status"] = status
    report["up"] = status != "down"
    return report
