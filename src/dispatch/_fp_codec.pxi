# SMPP PDU encoding and decoding. Included by _fastpath.pyx.
