"""``dispatch bench``: the benchmark suite as a product for load testers.

One command measures every layer of the engine beside its baseline in the same run, on the
same machine, and writes a JSON result file, plots and a Markdown/HTML report:

* ``ingest``: recipient-file parsing (Cython fast path vs the pure-Python reference), MB/s;
* ``codec``: SMPP PDU encode/decode (Cython vs reference vs smpplib), PDUs/s;
* ``pool``: ``BindPool`` throughput by window and bind count vs a smpplib-based sender,
  against the simulator (or a real SMSC with ``--target``, under a message cap);
* ``e2e``: a whole campaign, engine -> simulator in its own process, receipts and the SQLite
  store on, msg/s, submit->resp latency, window occupancy and RSS per recipient;
* ``api``: control API latency (campaign detail and list over real HTTP) while the engine
  dispatches at full rate, and the dispatch rate with and without that load.

Modules: ``options`` (CLI and config), ``runner`` (sections in order, progress, output),
one module per section, ``results`` (the JSON shape), ``report`` (plots and summary).
This package is imported lazily by ``dispatch.cli`` except for ``options``.
"""
