"""From a campaign and a claimed recipient to an ``OutboundMessage`` for the pool.

A campaign's text without ``{var}`` placeholders is segmented once and the segments are shared
by every recipient (the common bulk case costs no per-recipient encoding); a template is
rendered and segmented per recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatch.campaigns.model import Campaign, DataCoding, render_text
from dispatch.smpp.constants import (
    NPI_ISDN,
    NPI_UNKNOWN,
    TON_ALPHANUMERIC,
    TON_INTERNATIONAL,
    TON_UNKNOWN,
)
from dispatch.smpp.text import Concatenation, Segment, TextOptions, split_text
from dispatch.store.base import ClaimedRecipient
from dispatch.transport.pool import OutboundMessage


def text_options(campaign: Campaign, concatenation: Concatenation) -> TextOptions:
    return TextOptions(concatenation=concatenation,
                       allow_latin1=campaign.data_coding is DataCoding.LATIN1,
                       force_ucs2=campaign.data_coding is DataCoding.UCS2)


def source_address(sender: str) -> tuple[bytes, int, int]:
    """(source_addr, ton, npi): digits of a long number are international/ISDN, anything with
    letters is alphanumeric (SMPP 3.4 section 5.2.5)."""
    bare = sender.lstrip("+")
    if bare.isdigit() and len(bare) >= 10:
        return bare.encode("ascii"), TON_INTERNATIONAL, NPI_ISDN
    if bare.isdigit():
        return bare.encode("ascii"), TON_UNKNOWN, NPI_ISDN
    return sender.encode("ascii", "replace"), TON_ALPHANUMERIC, NPI_UNKNOWN


def relative_validity(seconds: int | None) -> bytes:
    """SMPP relative time "YYMMDDhhmmss000R" (SMPP 3.4 section 7.1.1.2), empty for none."""
    if not seconds:
        return b""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    years, days = divmod(days, 365)
    months, days = divmod(days, 30)
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R".encode()


@dataclass
class MessageFactory:
    """Builds the pool messages of one campaign (one instance per Sending campaign)."""

    campaign: Campaign
    concatenation: Concatenation = Concatenation.UDH_8BIT

    def __post_init__(self) -> None:
        c = self.campaign
        self._options = text_options(c, self.concatenation)
        self._source, self._source_ton, self._source_npi = source_address(c.sender)
        self._registered = 1 if c.registered_delivery else 0
        self._validity = relative_validity(c.validity_period_s)
        # The concatenation reference ties a text's parts together on the handset; one per
        # campaign is enough since a recipient gets one text from a campaign.
        self._reference = (c.id or 0) % 256
        self._shared: Sequence[Segment] | None = (
            None if c.placeholders else split_text(c.text, self._options, self._reference))

    def segments_for(self, recipient: ClaimedRecipient) -> Sequence[Segment]:
        if self._shared is not None:
            return self._shared
        text = render_text(self.campaign.text, recipient.variables)
        return split_text(text, self._options, self._reference)

    def build(self, recipients: Sequence[ClaimedRecipient]) -> list[OutboundMessage]:
        out: list[OutboundMessage] = []
        append = out.append
        source, ton, npi = self._source, self._source_ton, self._source_npi
        registered, validity = self._registered, self._validity
        for r in recipients:
            # Positional, in OutboundMessage's field order (ref, source_addr,
            # destination_addr, segments, source ton/npi, destination ton/npi,
            # registered_delivery, validity_period): 0.33 us a message against 0.83 us with
            # keywords, once per message sent.
            append(OutboundMessage(r.id, source, r.number.encode("ascii"), self.segments_for(r),
                                   ton, npi, TON_INTERNATIONAL, NPI_ISDN, registered, validity))
        return out
