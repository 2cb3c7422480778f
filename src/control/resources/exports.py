"""Recipient exports: create (202), status, streamed download (410 once expired)."""

from __future__ import annotations

from typing import ClassVar

import falcon
import falcon.asgi

from control.auth import Action, Actions, current_key
from control.config import ControlConfig
from control.errors import ApiError
from control.exports import ExportFormat, ExportRunner, stream_file
from control.media import render
from control.openapi import Docs, Op
from control.resources.campaigns import campaign_ref
from control.validation import Field, read_object
from dispatch.campaigns.service import CampaignService

CREATE_FIELDS = {"format": Field("string", enum=tuple(f.value for f in ExportFormat),
                                 default=ExportFormat.CSV.value)}


class CampaignExportsResource:
    actions: ClassVar[Actions] = {"POST": Action.EXPORT}
    docs: ClassVar[Docs] = {"POST": Op(
        "Queue an export of the campaign's recipients (CSV or TXT)",
        {202: ("Queued; poll the export", "Export")}, body=CREATE_FIELDS, tag="exports")}

    def __init__(self, service: CampaignService, config: ControlConfig,
                 runner: ExportRunner) -> None:
        self._service = service
        self._config = config
        self._runner = runner

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      campaign_id: str) -> None:
        ref = campaign_ref(campaign_id)
        body = await read_object(req, self._config.max_body_bytes, CREATE_FIELDS, empty_ok=True)
        campaign = await self._service.get(ref)  # 404 now rather than a failed export later
        export = self._runner.create(str(campaign.external_id),
                                     ExportFormat(body.get("format", ExportFormat.CSV.value)),
                                     with_numbers=current_key(req).clear_numbers)
        resp.status = falcon.HTTP_202
        resp.location = f"/api/v1/exports/{export.id}"
        render(req, resp, export.to_json())


class ExportResource:
    actions: ClassVar[Actions] = {"GET": Action.EXPORT}
    docs: ClassVar[Docs] = {"GET": Op("Export status: Queued, Running, Done, Failed, Expired",
                                      {200: ("The export", "Export")}, tag="exports")}

    def __init__(self, runner: ExportRunner) -> None:
        self._runner = runner

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     export_id: str) -> None:
        render(req, resp, self._runner.get(export_id).to_json())


class ExportDownloadResource:
    actions: ClassVar[Actions] = {"GET": Action.EXPORT}
    docs: ClassVar[Docs] = {"GET": Op(
        "Download a finished export (streamed); 410 once expired",
        {200: ("The file", None)}, ok_media="text/csv", errors=(409, 410), tag="exports")}
    # A viewer cannot fetch an export made with the clear-number right (403).

    def __init__(self, runner: ExportRunner) -> None:
        self._runner = runner

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     export_id: str) -> None:
        export = self._runner.download_path(export_id)
        assert export.path is not None
        if export.with_numbers and not current_key(req).clear_numbers:
            raise ApiError(403, "Forbidden", "This export holds clear numbers; the key may "
                                             "not see them")
        resp.content_type = ("text/csv; charset=utf-8" if export.format is ExportFormat.CSV
                             else "text/plain; charset=utf-8")
        resp.downloadable_as = f"recipients-{export.campaign_id}.{export.format.value}"
        if export.bytes is not None:
            resp.content_length = export.bytes
        resp.stream = stream_file(export.path)
