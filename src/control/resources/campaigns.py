"""Campaigns: create, list, KPI, detail, lifecycle actions, recipient-file upload."""

from __future__ import annotations

import secrets
import uuid
from datetime import time
from pathlib import Path
from typing import Any, ClassVar

import falcon
import falcon.asgi
import trio

from control.auth import Action, Actions, actor_of
from control.config import ControlConfig
from control.errors import bad_request, not_found
from control.media import render
from control.openapi import Docs, Op
from control.readcache import ViewCache
from control.storefault import StoreFaults
from control.upload import receive_file
from control.validation import (
    LIMIT,
    MAX_POSITION,
    NOT_BLANK,
    Field,
    parse_object,
    parse_query,
    read_object,
)
from control.views import audit_json, campaign_json, day_json, kpi_json, state_change_json
from dispatch.campaigns.model import (
    MAX_SENDER_CHARS,
    MAX_TEXT_CHARS,
    Campaign,
    CampaignKind,
    CampaignMode,
    CampaignStatus,
    DailyWindow,
    DataCoding,
)
from dispatch.campaigns.service import CampaignQuery, CampaignService, Period
from dispatch.store.base import CampaignSort


def _values(enum_cls: Any) -> tuple[str, ...]:
    return tuple(e.value for e in enum_cls)


def campaign_ref(campaign_id: str) -> uuid.UUID:
    """The UUID in a path; anything else cannot name a campaign, so it is a 404."""
    try:
        return uuid.UUID(campaign_id)
    except ValueError:
        raise not_found("Campaign not found") from None


WINDOW_FIELDS = {
    "start": Field("string", required=True, max_length=8,
                   description="Local wall-clock time HH:MM (or HH:MM:SS), no UTC offset"),
    "end": Field("string", required=True, max_length=8,
                 description="Local wall-clock time HH:MM (or HH:MM:SS), no UTC offset"),
    "timeZone": Field("string", description="IANA zone, default UTC", max_length=64),
}

CREATE_FIELDS = {
    "name": Field("string", max_length=200),
    "sender": Field("string", required=True, description="saddr (source address)",
                    max_length=MAX_SENDER_CHARS, pattern=NOT_BLANK,
                    pattern_message="Sender is required"),
    "text": Field("string", required=True, min_length=1, max_length=MAX_TEXT_CHARS),
    "esme": Field("string", required=True, description="The ESME route to send through",
                  max_length=64, pattern=NOT_BLANK, pattern_message="ESME route is required"),
    "mode": Field("string", enum=_values(CampaignMode)),
    "kind": Field("string", enum=_values(CampaignKind)),
    "dataCoding": Field("string", enum=_values(DataCoding)),
    "startAt": Field("datetime", nullable=True),
    "endAt": Field("datetime", nullable=True),
    "window": Field("object", nullable=True, description="Daily sending window"),
    "autoStart": Field("boolean"),
    "priority": Field("integer", minimum=1, maximum=10),
    "tpsCap": Field("number", nullable=True, minimum=0),
    "validityPeriod": Field("integer", nullable=True, minimum=0),
    "registeredDelivery": Field("boolean"),
    "fileId": Field("string", nullable=True, description="From POST /api/v1/uploads",
                    max_length=64),
}

LIST_QUERY = {
    "period": Field("string", enum=_values(Period), default=Period.ALL.value),
    "status": Field("array", items=Field("string", enum=_values(CampaignStatus))),
    "mode": Field("array", items=Field("string", enum=_values(CampaignMode))),
    "search": Field("string", max_length=100, description="Id prefix or sender"),
    "archived": Field("boolean", description="List the archive instead"),
    "sort": Field("string", enum=_values(CampaignSort), default=CampaignSort.CREATED.value),
    "order": Field("string", enum=("asc", "desc"), default="desc"),
    "offset": Field("integer", minimum=0, maximum=MAX_POSITION, default=0),
    "limit": LIMIT,
}

NOTE = Field("string", max_length=2000)
ACTION_BODIES: dict[str, dict[str, Field]] = {
    "approve": {"autoStart": Field("boolean", nullable=True), "note": NOTE},
    "reject": {"note": Field("string", required=True, max_length=2000)},
    **{name: {"note": NOTE} for name in ("start", "pause", "resume", "cancel", "archive",
                                         "restore")},
}
ACTION_PERMISSION = {"approve": Action.MODERATE, "reject": Action.MODERATE,
                     "start": Action.OPERATE, "pause": Action.OPERATE, "resume": Action.OPERATE,
                     "cancel": Action.OPERATE, "archive": Action.ARCHIVE,
                     "restore": Action.ARCHIVE}


def _parse_time(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError("Must be a time HH:MM") from None


def parse_window(data: Any) -> DailyWindow | None:
    if data is None:
        return None
    try:
        fields = parse_object(data, WINDOW_FIELDS, where="window")
    except falcon.HTTPError as exc:
        inner = getattr(exc, "validation_errors", {})
        raise bad_request("Validation failed",
                          {f"window.{k}" if k != "window" else k: v for k, v in inner.items()}
                          ) from None
    errors = {}
    times = {}
    for name in ("start", "end"):
        try:
            times[name] = _parse_time(fields[name])
        except ValueError as exc:
            errors[f"window.{name}"] = str(exc)
    if errors:
        raise bad_request("Validation failed", errors)
    return DailyWindow(times["start"], times["end"], fields.get("timeZone", "UTC"))


class CampaignsResource:
    actions: ClassVar[Actions] = {"GET": Action.READ, "POST": Action.CREATE}
    docs: ClassVar[Docs] = {
        "GET": Op("List campaigns (filters, sorting, pagination)",
                  {200: ("A page of campaigns", "CampaignPage")}, query=LIST_QUERY),
        "POST": Op("Create a campaign (status New, waiting for moderation)",
                   {201: ("Created", "Campaign")}, body=CREATE_FIELDS),
    }

    def __init__(self, service: CampaignService, config: ControlConfig,
                 faults: StoreFaults, views: ViewCache) -> None:
        self._service = service
        self._config = config
        self._faults = faults
        self._views = views

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self._views.respond(req, resp, ("list", req.query_string),
                                  lambda: self._list(req, resp))

    async def _list(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        q = parse_query(req, LIST_QUERY)
        query = CampaignQuery(
            period=Period(q["period"]),
            statuses=frozenset(CampaignStatus(s) for s in q.get("status", ())),
            modes=frozenset(CampaignMode(m) for m in q.get("mode", ())),
            # Blank searches mean "no search" (the store's prefix bound needs a character).
            search=(q.get("search") or "").strip() or None, archived=q.get("archived", False),
            sort=CampaignSort(q["sort"]), descending=q["order"] == "desc",
            offset=q["offset"], limit=q.get("limit"))
        page = await self._service.list_campaigns(query)
        progress = await self._service.progress_of(page.items)  # the list's Progress column
        held = self._faults.held_up()
        render(req, resp, {"items": [campaign_json(c, progress.get(c.id or 0), held.of(c))
                                     for c in page.items],
                           "total": page.total,
                           "offset": query.offset,
                           "limit": q.get("limit", 50)})

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_object(req, self._config.max_body_bytes, CREATE_FIELDS)
        window = parse_window(body.get("window"))
        source_path = await self._uploaded_file(body.get("fileId"))
        campaign = Campaign(
            sender=body["sender"], text=body["text"], author=actor_of(req), esme=body["esme"],
            mode=CampaignMode(body.get("mode", CampaignMode.ON_DEMAND.value)),
            kind=CampaignKind(body.get("kind", CampaignKind.BULK.value)),
            data_coding=DataCoding(body.get("dataCoding", DataCoding.AUTO.value)),
            start_at=body.get("startAt"), end_at=body.get("endAt"), window=window,
            auto_start=body.get("autoStart", False), priority=body.get("priority", 5),
            tps_cap=body.get("tpsCap"), validity_period_s=body.get("validityPeriod"),
            registered_delivery=body.get("registeredDelivery", True),
            source_path=source_path, name=body.get("name", ""))
        created = await self._service.create(campaign)
        resp.status = falcon.HTTP_201
        resp.location = f"/api/v1/campaigns/{created.external_id}"
        render(req, resp, campaign_json(created))

    async def _uploaded_file(self, file_id: str | None) -> str | None:
        if file_id is None:
            return None
        if not file_id.isalnum():
            raise bad_request("Validation failed", {"fileId": "Unknown file"})
        matches = await trio.to_thread.run_sync(
            lambda: sorted(self._config.uploads_dir.glob(f"upload-{file_id}.*")))
        done = [p for p in matches if p.suffix != ".part"]
        if not done:
            raise bad_request("Validation failed", {"fileId": "Unknown file"})
        return str(done[0])


class KpiResource:
    actions: ClassVar[Actions] = {"GET": Action.READ}
    docs: ClassVar[Docs] = {"GET": Op("KPI tiles: total, active, completed, errors, SMS sent",
                                      {200: ("Counters", "Kpi")})}

    def __init__(self, service: CampaignService, views: ViewCache) -> None:
        self._service = service
        self._views = views

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self._views.respond(req, resp, ("kpi",), lambda: self._kpi(req, resp))

    async def _kpi(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        render(req, resp, kpi_json(await self._service.kpi()))


class CampaignResource:
    actions: ClassVar[Actions] = {"GET": Action.READ}
    docs: ClassVar[Docs] = {"GET": Op(
        "Campaign detail: progress, daily activity, state history, audit",
        {200: ("The campaign", "CampaignDetail")})}

    def __init__(self, service: CampaignService, faults: StoreFaults, views: ViewCache) -> None:
        self._service = service
        self._faults = faults
        self._views = views

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     campaign_id: str) -> None:
        await self._views.respond(req, resp, ("detail", campaign_id),
                                  lambda: self._detail(req, resp, campaign_id))

    async def _detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      campaign_id: str) -> None:
        d = await self._service.detail(campaign_ref(campaign_id))
        body = campaign_json(d.campaign, d.counters, self._faults.held_up().of(d.campaign))
        body.update(dailyActivity=[day_json(x) for x in d.daily_activity],
                    stateHistory=[state_change_json(x) for x in d.state_history],
                    audit=[audit_json(x) for x in d.audit], allowedActions=d.allowed_actions)
        render(req, resp, body)


class CampaignActionResource:
    """One lifecycle action (``POST /campaigns/{id}/approve`` etc.); 409 names the status."""

    def __init__(self, service: CampaignService, config: ControlConfig, action: str,
                 faults: StoreFaults) -> None:
        self._service = service
        self._config = config
        self._faults = faults
        self._action = action
        self._fields = ACTION_BODIES[action]
        self.actions = {"POST": ACTION_PERMISSION[action]}
        self.docs = {"POST": Op(f"{action.capitalize()} the campaign",
                                {200: ("The campaign after the action", "Campaign")},
                                body=self._fields, errors=(409,))}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      campaign_id: str) -> None:
        ref = campaign_ref(campaign_id)
        body = await read_object(req, self._config.max_body_bytes, self._fields,
                                 empty_ok=not any(f.required for f in self._fields.values()))
        actor = actor_of(req)
        note = body.get("note", "")
        s = self._service
        if self._action == "approve":
            campaign = await s.approve(ref, actor, auto_start=body.get("autoStart"), note=note)
        elif self._action == "reject":
            campaign = await s.reject(ref, actor, note)
        else:
            campaign = await getattr(s, self._action)(ref, actor, note)
        render(req, resp, campaign_json(campaign, None, self._faults.held_up().of(campaign)))


TRIGGER_FIELDS = {
    # No size bound here: the service checks the configured per-request limit (200000 by
    # default) and answers it with the documented "Maximum N recipients allowed per request".
    "phoneNumbers": Field("array", items=Field("string", max_length=32),
                          description="Release these recipients (each at most once), "
                                      "up to 200000"),
    "count": Field("integer", minimum=1,
                   description="Or: release the next N recipients in file order, up to 200000"),
    "note": NOTE,
}


class CampaignTriggerResource:
    """``POST /campaigns/{id}/trigger``: a trigger event for a Trigger-mode campaign.

    Releases the named recipients (``phoneNumbers``, matched by keyed hash) or the next
    ``count`` of them from Held to New; the engine sends them at once. 409 names the status
    when the campaign is not Sending or Paused; a non-Trigger campaign is a 400."""

    actions: ClassVar[Actions] = {"POST": Action.OPERATE}
    docs: ClassVar[Docs] = {"POST": Op(
        "Trigger event: release recipients of a Trigger campaign for sending",
        {200: ("What the event released", "TriggerResult")}, body=TRIGGER_FIELDS,
        errors=(409,))}

    def __init__(self, service: CampaignService, config: ControlConfig) -> None:
        self._service = service
        self._config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      campaign_id: str) -> None:
        ref = campaign_ref(campaign_id)
        body = await read_object(req, self._config.max_body_bytes, TRIGGER_FIELDS)
        result = await self._service.trigger(ref, actor_of(req), body.get("phoneNumbers", ()),
                                             body.get("count", 0), body.get("note", ""))
        render(req, resp, {"campaignId": str(ref), "released": result.released,
                           "alreadyReleased": result.already_released,
                           "notFound": result.not_found})


class UploadsResource:
    """``POST /uploads?filename=x.csv``: the recipient file as the raw, streamed body.

    Answers 201 with a ``fileId`` to pass when creating the campaign (the browser wizard's
    flow: upload, then submit). The file stays under ``<data_dir>/uploads``.
    """

    actions: ClassVar[Actions] = {"POST": Action.CREATE}
    QUERY: ClassVar[dict[str, Field]] = {
        "filename": Field("string", max_length=255, description="Original name (.txt or .csv)")}
    docs: ClassVar[Docs] = {"POST": Op(
        "Upload a recipient file (.txt or .csv) as a streamed body",
        {201: ("Stored", "Upload")}, query=QUERY,
        raw_body=("text/plain", "text/csv", "application/octet-stream"), errors=(413, 415))}

    def __init__(self, config: ControlConfig) -> None:
        self._config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        q = parse_query(req, self.QUERY)
        received = await receive_file(req, self._config.uploads_dir,
                                      self._config.max_upload_bytes, q.get("filename"))
        file_id = secrets.token_hex(12)
        suffix = {"txt": ".txt", "csv": ".csv"}.get(received.format, ".dat")
        final = Path(received.path).with_name(f"upload-{file_id}{suffix}")
        await trio.to_thread.run_sync(received.path.rename, final)
        resp.status = falcon.HTTP_201
        render(req, resp, {"fileId": file_id, "bytes": received.bytes,
                           "format": received.format})
