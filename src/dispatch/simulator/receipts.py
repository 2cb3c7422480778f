"""The text of the delivery receipts the simulator sends (SMPP 3.4 Appendix B), made from
pieces encoded once: a receipt per accepted submit is the simulator's hottest path.

    id:IIIIIIIIII sub:001 dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E text:...

(one line) with the first 20 octets of the message after ``text:``.
"""

from __future__ import annotations

import time


def receipt_template(stat: str, err: str, stamp: str) -> bytes:
    """``template % (receipt_id, short_message[:20])`` is the receipt's short_message."""
    dlvrd = "001" if stat == "DELIVRD" else "000"
    fixed = (f" sub:001 dlvrd:{dlvrd} submit date:{stamp} done date:{stamp} "
             f"stat:{stat} err:{err} text:")
    return b"id:%s" + fixed.encode().replace(b"%", b"%%") + b"%s"


class ReceiptTexts:
    """Receipt templates for the current stamp, one per ``(stat, err)``, made when first used.

    Submit and done date are both the stamp, Appendix B's "YYMMDDhhmm" (UTC) of the last
    ``refresh``: the simulator calls it once per batch of submits it reads."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""
        self._templates: dict[tuple[str, str], bytes] = {}

    def refresh(self) -> None:
        """Take the stamp of now (the clock is looked at once a second)."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            stamp = time.strftime("%y%m%d%H%M", time.gmtime(second))
            if stamp != self._stamp:
                self._stamp = stamp
                self._templates = {}

    def template(self, outcome: tuple[str, str]) -> bytes:
        """The template of ``(stat, err)`` for the stamp."""
        template = self._templates.get(outcome)
        if template is None:
            template = self._templates[outcome] = receipt_template(*outcome, self._stamp)
        return template
