"""Settings of the control API: one frozen dataclass with defaults (the ``[control]`` section).

The engine's typed config embeds :class:`ControlConfig` (``dispatch.configload.build`` accepts
it as a nested dataclass), so every value here can come from TOML or ``DISPATCH__CONTROL__*``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dispatch.campaigns.service import MAX_MESSAGES_PER_REQUEST

#: Bytes one transactional message may take in a request body, on average: the number and
#: the JSON around it are ~50 (``{"phoneNumber":"+79123456789","variables":{}}``), which
#: leaves ~460 for its variables.
MESSAGE_BODY_BYTES = 512


@dataclasses.dataclass(frozen=True)
class ControlConfig:
    """Limits and locations of the HTTP control API."""

    #: Where uploads, exports and (by default) the API key file live. Relative paths here and
    #: in ``keys_file`` are relative to the config file's directory when set in the file
    #: (``dispatch.configload.load_toml``), to the working directory otherwise.
    data_dir: str = "./data"
    #: Listen address of the API server.
    host: str = "127.0.0.1"
    port: int = 8080
    #: Recipient files larger than this are refused with 413 (the product caps API uploads at 1 GB).
    max_upload_bytes: int = 1024 * 1024 * 1024
    #: JSON/msgpack request bodies larger than this are refused with 413 (they are read whole).
    max_body_bytes: int = 16 * 1024 * 1024
    #: The same for the body of ``POST /campaigns/{id}/messages`` (transactional messages):
    #: it follows from the per-request message limit, 200 000 messages of ``MESSAGE_BODY_BYTES``
    #: each (102 400 000 bytes, 97.7 MB), so the documented limit can be reached with variables.
    max_messages_body_bytes: int = MAX_MESSAGES_PER_REQUEST * MESSAGE_BODY_BYTES
    #: Per-key token bucket: sustained requests per second and burst size.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    #: Finished exports can be downloaded for this long, then answer 410 Gone.
    export_ttl_s: float = 900.0
    #: How many exports may wait in the queue before creating one answers 429.
    export_queue_size: int = 64
    #: Require an API key on /metrics too (health and openapi stay public): ``X-API-Key`` or
    #: ``Authorization: Bearer <key>`` (Prometheus's ``authorization`` scrape setting).
    protect_metrics: bool = False
    #: Retry-After (seconds) of the 503 a write gets while the store cannot take writes.
    store_retry_after_s: int = 5
    #: The API key file; empty means ``<data_dir>/api_keys.json``.
    keys_file: str = ""
    #: Seconds the server gives open requests to finish on shutdown.
    graceful_timeout_s: float = 5.0
    #: The HTTP server on the engine's loop: "builtin" (``control.httpserver``, h11: the least
    #: loop CPU per request) or "hypercorn" (hypercorn's trio worker).
    server: str = "builtin"
    #: Open connections the built-in server keeps at once; one more is answered 503 and
    #: closed (a client leaking connections must not exhaust the engine's descriptors).
    max_connections: int = 512
    #: Campaign list, detail and KPI bodies are served again to identical requests for this
    #: long (seconds; 0 turns it off). Statuses are never stale (a create or transition ends
    #: every entry), counters at most this much (``control.readcache``).
    read_cache_s: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:  # the socket layer would wrap 70000 to 4464
            raise ValueError("port must be between 0 and 65535")
        if min(self.max_upload_bytes, self.max_body_bytes, self.max_messages_body_bytes) <= 0:
            raise ValueError("max_upload_bytes, max_body_bytes and max_messages_body_bytes "
                             "must be positive")
        if self.rate_limit_per_s <= 0 or self.rate_limit_burst < 1:
            raise ValueError("rate_limit_per_s must be > 0 and rate_limit_burst >= 1")
        if self.export_ttl_s <= 0:
            raise ValueError("export_ttl_s must be positive")
        if self.server not in ("builtin", "hypercorn"):
            raise ValueError('server must be "builtin" or "hypercorn"')
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if not 0 <= self.read_cache_s <= 60:
            raise ValueError("read_cache_s must be between 0 and 60")
        if self.store_retry_after_s < 1:
            raise ValueError("store_retry_after_s must be >= 1")

    @property
    def uploads_dir(self) -> Path:
        return Path(self.data_dir) / "uploads"

    @property
    def exports_dir(self) -> Path:
        return Path(self.data_dir) / "exports"

    @property
    def keys_path(self) -> Path:
        return Path(self.keys_file) if self.keys_file else Path(self.data_dir) / "api_keys.json"
