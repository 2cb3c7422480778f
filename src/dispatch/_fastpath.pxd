# cython: language_level=3
# C-level declarations of the fast path (``dispatch._fastpath``), shared by its .pxi parts.
#
# Cython reads this file before _fastpath.pyx, so every part sees these names; another Cython
# module can ``from dispatch._fastpath cimport dpi_siphash128, dpi_set, ...`` to reuse them (the
# helpers are static C in a verbatim block, so they are compiled into the cimporting module).
# Python-level names and signatures are in _fastpath.pyi.

# ctn hashing: SipHash-2-4-128, one at a time and in batches (dpi_siphash128, dpi_hash_many).
include "_fp_hash_c.pxi"
# Recipients: growable uint64 arrays, the dedupe set, line scanning and phone normalisation
# (types dpi_vec, dpi_set, dpi_trunk; functions dpi_*).
include "_fp_ingest_c.pxi"
