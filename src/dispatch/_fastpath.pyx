# cython: language_level=3
"""The fast path: bytes-level work in C, GIL released in the long loops.

Each part lives in its own include file so it can be read (and reviewed) alone; the pure-Python
reference with the same names is ``dispatch._reference``. See ``_fastpath.pyi`` for the API.
"""

include "_fp_ingest.pxi"
include "_fp_codec.pxi"
