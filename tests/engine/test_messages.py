"""``MessageFactory.build``: each recipient's submit fields from its campaign (sender and its
TON/NPI, registered delivery, validity, the text's segments, {var} filled per recipient)."""

from __future__ import annotations

from dispatch.campaigns.model import Campaign
from dispatch.engine.messages import MessageFactory, relative_validity
from dispatch.smpp.constants import NPI_ISDN, TON_INTERNATIONAL
from dispatch.store.base import ClaimedRecipient


def test_each_field_of_a_built_message_comes_from_its_campaign_and_recipient() -> None:
    campaign = Campaign(sender="Shop", text="Hi {name}", author="t", esme="sim", id=7,
                        registered_delivery=True, validity_period_s=3600)
    built = MessageFactory(campaign).build([
        ClaimedRecipient(11, "79000000001", {"name": "Ana"}, 1),
        ClaimedRecipient(12, "79000000002", {"name": "Bo"}, 2)])
    assert [m.ref for m in built] == [11, 12]
    assert [m.destination_addr for m in built] == [b"79000000001", b"79000000002"]
    assert [m.segments[0][0] for m in built] == [b"Hi Ana", b"Hi Bo"]
    for m in built:
        assert m.source_addr == b"Shop"
        assert (m.source_addr_ton, m.source_addr_npi) == (5, 0)  # alphanumeric sender
        assert (m.dest_addr_ton, m.dest_addr_npi) == (TON_INTERNATIONAL, NPI_ISDN)
        assert m.registered_delivery == 1
        assert m.validity_period == relative_validity(3600) != b""
        assert (m.service_type, m.protocol_id, m.priority_flag) == (b"", 0, 0)
