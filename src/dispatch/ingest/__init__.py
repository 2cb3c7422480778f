"""Recipient files in: parse, normalise to E.164, validate, dedupe and ctn-hash, in chunks.

The work is done by the fast path (``dispatch.fastpath.impl``: the Cython extension, or its
pure-Python reference); this package is the Python-facing API around it::

    from dispatch.ingest import IngestOptions, RecipientStream, TrunkRule

    options = IngestOptions(hash_key=key16, trunk=TrunkRule.russia())
    stream = RecipientStream("recipients.csv", options)
    for batch in stream:                # RecipientBatch: compact arrays, one per chunk
        store.add(batch.numbers, batch.hashes, batch.line_numbers, batch.variables)
    print(stream.summary.message())     # counts and the first line errors

In the engine: ``summary = await trio.to_thread.run_sync(ingest_file, path, options, on_batch)``.
"""

from dispatch.ingest.display import ctn_hash, mask_number, normalize_phone
from dispatch.ingest.options import IngestOptions, TrunkRule
from dispatch.ingest.stream import (
    IngestError,
    IngestSummary,
    LineError,
    RecipientStream,
    ingest_file,
)

__all__ = [
    "IngestError",
    "IngestOptions",
    "IngestSummary",
    "LineError",
    "RecipientStream",
    "TrunkRule",
    "ctn_hash",
    "ingest_file",
    "mask_number",
    "normalize_phone",
]
