"""control: the HTTP control API of the dispatch engine (Falcon ASGI on the engine's trio loop)."""
