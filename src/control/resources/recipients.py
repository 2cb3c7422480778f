"""Recipients of a campaign, lookup by phone number, errors, transactional messages.

Numbers are masked (last digits) with their ctn_hash unless the caller's key has the
clear-number right. A lookup takes the phone number in the POST body (never in the URL, so it
cannot reach an access log), hashes it with the engine's ctn key and searches by hash; the
number itself is neither logged nor kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

import falcon
import falcon.asgi

from control.auth import Action, Actions, current_key
from control.config import ControlConfig
from control.errors import ApiError, bad_request
from control.media import render
from control.openapi import Docs, Op
from control.resources.campaigns import campaign_ref
from control.validation import (
    LIMIT,
    MAX_POSITION,
    PHONE_MESSAGE,
    Field,
    parse_query,
    read_object,
)
from control.views import job_error_json, recipient_json
from dispatch.campaigns.model import RecipientStage, SmsResult
from dispatch.campaigns.service import (
    OFF_LOOP_ITEMS,
    CampaignService,
    NumberPreparer,
    TransactionalMessage,
    off_loop_if,
    release_off_loop,
)
from dispatch.store.base import Page

RECIPIENT_QUERY = {
    "stage": Field("array", items=Field("string", enum=tuple(s.value for s in RecipientStage))),
    "smsResult": Field("array", items=Field("string", enum=tuple(s.value for s in SmsResult))),
    "stat": Field("array", items=Field("string", max_length=16),
                  description="SMPP receipt stat (DELIVRD, UNDELIV, ...)"),
    "includeNullStat": Field("boolean", description="Also recipients without a receipt "
                             "(default: true without a stat filter, false with one)"),
    "after": Field("integer", minimum=0, maximum=MAX_POSITION, default=0,
                   description="Keyset cursor (nextAfter)"),
    "limit": LIMIT,
}

ERRORS_QUERY = {
    "jobOffset": Field("integer", minimum=0, maximum=MAX_POSITION, default=0),
    "messagesAfter": Field("integer", minimum=0, maximum=MAX_POSITION, default=0),
    "limit": LIMIT,
}

LOOKUP_FIELDS = {
    # No pattern here: the number is checked by the engine's own normaliser below, so every
    # spelling a recipient file or a transactional request takes ("+7 912 345-00-01",
    # "0079123450001") finds the same recipient.
    "phoneNumber": Field("string", required=True, max_length=32,
                         description="Phone number, 10-15 digits, in any spelling the core "
                                     "accepts"),
    "campaignId": Field("string", nullable=True, max_length=36),
}

MESSAGES_FIELDS = {
    "messages": Field("array", required=True, items=Field("object"),
                      description="[{phoneNumber, variables}] up to 200000"),
}
_MESSAGE_KEYS = {"phoneNumber", "variables"}


def page_json(page: Page[Any], items: list[dict[str, Any]], limit: int | None) -> dict[str, Any]:
    return {"items": items, "total": page.total, "nextAfter": page.next_after,
            "limit": limit if limit is not None else 50}


class RecipientsResource:
    actions: ClassVar[Actions] = {"GET": Action.READ}
    docs: ClassVar[Docs] = {"GET": Op(
        "Recipients of a campaign with delivery state (numbers masked without the right)",
        {200: ("A page of recipients", "RecipientPage")}, query=RECIPIENT_QUERY)}

    def __init__(self, service: CampaignService) -> None:
        self._service = service

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     campaign_id: str) -> None:
        ref = campaign_ref(campaign_id)
        q = parse_query(req, RECIPIENT_QUERY)
        clear = current_key(req).clear_numbers
        page = await self._service.recipients(
            ref, stages=frozenset(RecipientStage(s) for s in q.get("stage", ())),
            sms_results=frozenset(SmsResult(s) for s in q.get("smsResult", ())),
            stats=frozenset(q.get("stat", ())),
            include_null_stat=q.get("includeNullStat", not q.get("stat")), after_id=q["after"],
            limit=q.get("limit"), with_numbers=clear)
        render(req, resp, page_json(page, [recipient_json(r, clear) for r in page.items],
                                     q.get("limit")))


class LookupResource:
    actions: ClassVar[Actions] = {"POST": Action.READ}
    docs: ClassVar[Docs] = {"POST": Op(
        "Find a phone number's recipients (hashed with the ctn key, never stored or logged)",
        {200: ("Matching recipients", "RecipientPage")}, body=LOOKUP_FIELDS, errors=(404, 503),
        tag="recipients")}

    def __init__(self, service: CampaignService, config: ControlConfig,
                 prepare_number: NumberPreparer | None) -> None:
        self._service = service
        self._config = config
        self._prepare = prepare_number

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_object(req, self._config.max_body_bytes, LOOKUP_FIELDS)
        if self._prepare is None:
            raise ApiError(503, "Service Unavailable", "Number lookup is not configured")
        try:
            digits, ctn_hash, _ = self._prepare(body["phoneNumber"])
        except ValueError:
            raise bad_request("Invalid phone number format",
                              {"phoneNumber": PHONE_MESSAGE}) from None
        ref = None if body.get("campaignId") is None else campaign_ref(body["campaignId"])
        found = await self._service.lookup(ctn_hash, ref)
        clear = current_key(req).clear_numbers
        external = await self._external_ids({r.campaign_id for r in found})
        items = [recipient_json(r, clear, external.get(r.campaign_id)) for r in found]
        if clear:  # the store returns hashes only; the caller sent the number itself
            for item in items:
                item["number"] = digits
        render(req, resp, {"items": items, "total": len(items), "nextAfter": None})

    async def _external_ids(self, ids: set[int]) -> dict[int, str]:
        out = {}
        for cid in ids:
            out[cid] = str((await self._service.get(cid)).external_id)
        return out


class ErrorsResource:
    """Job errors (file lines, retry exhaustion) and message errors (sms_result failed)."""

    actions: ClassVar[Actions] = {"GET": Action.READ}
    docs: ClassVar[Docs] = {"GET": Op("Job errors and message errors of a campaign, with counts",
                                      {200: ("Both lists", "Errors")}, query=ERRORS_QUERY)}

    def __init__(self, service: CampaignService) -> None:
        self._service = service

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     campaign_id: str) -> None:
        ref = campaign_ref(campaign_id)
        q = parse_query(req, ERRORS_QUERY)
        clear = current_key(req).clear_numbers
        jobs = await self._service.job_errors(ref, q["jobOffset"], q.get("limit"))
        messages = await self._service.message_errors(ref, q["messagesAfter"], q.get("limit"),
                                                      with_numbers=clear)
        render(req, resp, {
            "jobErrors": page_json(jobs, [job_error_json(e) for e in jobs.items], q.get("limit")),
            "messageErrors": page_json(messages, [recipient_json(r, clear) for r in messages.items],
                                       q.get("limit")),
            "counts": {"job": jobs.total, "messages": messages.total,
                       "badge": jobs.total + messages.total},
        })


class MessagesResource:
    """Add messages to an active transactional campaign (202: queued for sending).

    Its body may be as large as ``max_messages_body_bytes`` (sized for the 200 000 messages a
    request may carry), not ``max_body_bytes`` like the other bodies."""

    actions: ClassVar[Actions] = {"POST": Action.SEND}
    docs: ClassVar[Docs] = {"POST": Op(
        "Add messages to an active transactional campaign",
        {202: ("Queued", "MessagesAccepted")}, body=MESSAGES_FIELDS, errors=(413,))}

    def __init__(self, service: CampaignService, config: ControlConfig) -> None:
        self._service = service
        self._config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      campaign_id: str) -> None:
        ref = campaign_ref(campaign_id)
        body = await read_object(req, self._config.max_messages_body_bytes, MESSAGES_FIELDS,
                                 too_large_hint="; send the messages in smaller requests")
        items = body["messages"]
        messages = await off_loop_if(len(items) > OFF_LOOP_ITEMS, parse_messages, items)
        try:
            accepted = await self._service.add_messages(ref, messages)
        finally:
            await release_off_loop(items, messages)  # not at the return, on the loop
        resp.status = falcon.HTTP_202
        render(req, resp, {"campaignId": str(ref), "accepted": accepted})


def parse_messages(items: list[dict[str, Any]]) -> list[TransactionalMessage]:
    errors: dict[str, str] = {}
    out = []
    for i, item in enumerate(items):
        unknown = set(item) - _MESSAGE_KEYS
        number = item.get("phoneNumber")
        variables = item.get("variables")
        if unknown:
            # min of the names, not of the keys: a msgpack map may mix str and bytes keys,
            # which do not compare (sorted() of them was a TypeError, a 500).
            errors[f"messages[{i}].{min(map(str, unknown))}"] = "Unknown field"
        elif not isinstance(number, str):
            errors[f"messages[{i}].phoneNumber"] = "Must be a string"
        elif variables is not None and not isinstance(variables, dict):
            errors[f"messages[{i}].variables"] = "Must be an object"
        else:
            out.append(TransactionalMessage(number, variables))
        if len(errors) >= 100:
            break
    if errors:
        raise bad_request("Validation failed", errors)
    return out

