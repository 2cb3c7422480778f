"""Pure-Python reference of ``dispatch._fastpath``: the same names, the same results.

It is the specification the extension is tested against and the fallback when the extension
is not built. Each part lives in its own module; this package re-exports them so the selector
(``dispatch.fastpath``) can treat it exactly like the extension module.
"""

from dispatch._reference.codec import *  # noqa: F403
from dispatch._reference.ingest import *  # noqa: F403
