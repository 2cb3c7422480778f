"""Ending a bound connection gracefully, whichever side unbinds (SMPP 3.4 section 4.2).

* ``closer`` -- ours: once ``Bind.stop()`` was called, wait (``drain_timeout_s`` at most) for
  the outstanding responses, send unbind and wait (``unbind_timeout_s``) for its unbind_resp;
* ``unbind_drainer`` -- the SMSC's: after its unbind the reader goes on: the deliver_sm read
  before the unbind are handed on and answered (the session lets the unbind_resp out behind
  their deliver_sm_resp) and late submit_sm_resp still settle their submits; the link ends
  once the session is closed, ``drain_timeout_s`` at most.

Both run in the bind's nursery (``Bind.serve``) and end the link by raising ``LinkDown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from dispatch.smpp.session import SessionState
from dispatch.transport.errors import LinkDown

if TYPE_CHECKING:
    from dispatch.transport.bind import Bind


async def closer(bind: Bind) -> None:
    """Graceful end: drain outstanding responses, unbind, wait for unbind_resp."""
    cfg = bind.config
    await bind._stop.wait()
    with trio.move_on_after(cfg.drain_timeout_s):
        while bind.inflight:
            if bind._window_free.is_set():
                bind._window_free = trio.Event()
            await bind._window_free.wait()
    if bind.session.state in (SessionState.BOUND_TX, SessionState.BOUND_RX,
                              SessionState.BOUND_TRX):
        bind.session.send_unbind()
        bind.kick()
        with trio.move_on_after(cfg.unbind_timeout_s):
            while bind.session.state is not SessionState.CLOSED:
                await trio.sleep(0.01)
    if bind._peer_unbound.is_set():
        return  # the SMSC unbound first: the unbind drainer ends the link
    raise LinkDown("stopped")


async def unbind_drainer(bind: Bind) -> None:
    """After the SMSC's unbind (SMPP 3.4 section 4.2): wait until the session closed --
    the deliver_sm read before the unbind answered, then the unbind_resp, and every
    outstanding submit_sm answered -- or ``drain_timeout_s`` passed; then let the reader
    settle what it read and the writer flush, and end the link. Submits still unanswered
    then go back to the pool under the in-flight policy."""
    cfg, session = bind.config, bind.session
    await bind._peer_unbound.wait()
    with trio.move_on_after(cfg.drain_timeout_s):
        while session.state is not SessionState.CLOSED:
            await trio.sleep(0.01)
    if session.state is not SessionState.CLOSED:
        session.end_unbound()  # answers the unbind now if it was still waiting
    bind.kick()
    # The reader is not cancelled while it hands on what it read: it popped those
    # submits from ``inflight`` already, so their outcomes exist nowhere else.
    with trio.move_on_after(cfg.unbind_timeout_s):
        while bind._handling or session.has_data_to_send or bind._writing:
            await trio.sleep(0.001)
    raise LinkDown("unbound by the SMSC")
