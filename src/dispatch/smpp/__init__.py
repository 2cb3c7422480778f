"""SMPP 3.4 (with the v5 TLVs that matter): constants, codec wrappers, text, receipts, session.

Nothing in this package does I/O or imports trio (STYLE.md: protocol code is sans-IO).
"""
