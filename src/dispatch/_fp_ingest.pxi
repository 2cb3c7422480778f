# Recipient file parsing, normalisation, dedupe and ctn hashing. Included by _fastpath.pyx.
