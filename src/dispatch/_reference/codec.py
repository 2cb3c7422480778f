"""Reference SMPP codec (pure Python). See dispatch/_fastpath.pyi."""

__all__: list[str] = []
