"""Reference recipient parsing and hashing (pure Python). See dispatch/_fastpath.pyi."""

__all__: list[str] = []
