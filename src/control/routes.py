"""The API's routes under ``/api/v1``: one table, read by ``create_app`` and the OpenAPI
builder alike."""

from __future__ import annotations

from typing import Any

from control.config import ControlConfig
from control.exports import ExportRunner
from control.readcache import ReadCache, ViewCache
from control.resources import campaigns, exports, recipients
from control.storefault import StoreFaults
from dispatch.campaigns.service import CampaignService, NumberPreparer


def api_routes(service: CampaignService, config: ControlConfig, runner: ExportRunner,
               prepare_number: NumberPreparer | None,
               faults: StoreFaults, cache: ReadCache) -> list[tuple[str, Any]]:
    """``cache``: rendered campaign views (``control.readcache``), built by ``create_app``."""
    views = ViewCache(cache, faults)
    cid = "/campaigns/{campaign_id}"
    routes: list[tuple[str, Any]] = [
        ("/campaigns", campaigns.CampaignsResource(service, config, faults, views)),
        ("/campaigns/kpi", campaigns.KpiResource(service, views)),
        (cid, campaigns.CampaignResource(service, faults, views)),
        ("/uploads", campaigns.UploadsResource(config)),
        (f"{cid}/trigger", campaigns.CampaignTriggerResource(service, config)),
        (f"{cid}/recipients", recipients.RecipientsResource(service)),
        (f"{cid}/errors", recipients.ErrorsResource(service)),
        (f"{cid}/messages", recipients.MessagesResource(service, config)),
        (f"{cid}/exports", exports.CampaignExportsResource(service, config, runner)),
        ("/recipients/lookup", recipients.LookupResource(service, config, prepare_number)),
        ("/exports/{export_id}", exports.ExportResource(runner)),
        ("/exports/{export_id}/download", exports.ExportDownloadResource(runner)),
    ]
    routes += [(f"{cid}/{action}", campaigns.CampaignActionResource(service, config, action,
                                                                   faults))
               for action in campaigns.ACTION_BODIES]
    return routes
