"""dispatch: a high-throughput SMS campaign dispatch engine (SMPP send core)."""

__version__ = "0.1.0"
