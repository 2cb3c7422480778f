"""The engine's writing store in a process of its own (``[store] process``, on by default).

Why: the engine's event loop and its store thread share one GIL. While the engine sends at
full rate the store thread needs about as much CPU as the loop (building rows, binding them,
SQLite's steps, psycopg's), so the engine process ran at one core, each thread about half the
time (BENCHMARKS.md, rounds 14-15). In a process of its own the store's work runs on the
other core beside the loop; what the engine keeps is encoding a batch and decoding a result.

How: ``StoreProcess`` has the ``Store`` methods (``ClusterStoreProcess`` the ``Cluster`` ones
too, for PostgreSQL); each sends ``(name, args)`` over a socket pair to a child that owns the
real store and waits for ``(ok, result)``. Calls stay one at a time, as on the store thread
(``AsyncStore`` serialises them), so the order of writes is the order of calls. Pickle carries
them, except the batches of the two hot calls, which go as msgpack (``_PACKED_ROWS``). The
store's own exceptions come back and are raised as they are. The engine's reads (API,
control loop) do not come here: they use a second store in the engine's process.

Crash safety is unchanged: a call returns after the child's commit, as it did after the
thread's. If the engine dies, the child sees the pipe close and exits (after the transaction
it is in, which is atomic either way). If the child dies, the call in progress (or the next
one) raises ``StoreProcessLost``, an ``OSError`` and so one of ``STORE_FAULTS``: the writer
keeps its batch and retries, the routes stop claiming, a lost claim's rows are given back (as
after a lost PostgreSQL connection). The call after that starts a new child. What the dead
child had not committed was rolled back by the database, so a retried batch applies once.

The child is ``python -m dispatch.store.process FD``, not a ``multiprocessing`` child: forking
the engine is unsafe once it runs threads, and ``spawn``/``forkserver`` re-run the parent's
``__main__`` script in the child. Starting it costs about 0.1 s, once per engine start.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgpack

from dispatch.logs import configure_logging, log_event, stderr_settings
from dispatch.store.base import (
    ClaimedRecipient,
    RecipientRow,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.cluster import Cluster
from dispatch.store.rows import ReceiptRow, SubmitRow, keyed_receipt_rows, to_us

log = logging.getLogger(__name__)

#: Methods whose iterable arguments are turned into lists before they are sent (a generator
#: cannot be pickled); the positions of those arguments.
_MATERIALISE: dict[str, tuple[int, ...]] = {"add_job_errors": (1,)}


# The dispatch path's two hot calls, and the recipients a build or a transactional request
# stores, carry thousands of NamedTuples in one argument. Pickle reduces each one through a
# Python-level call (~2 us a row, measured), and the engine's side of that runs on the
# engine's GIL, allocating as it goes: a 200 000-message request's pickling set off a
# ~200 ms collection in its worker thread, which stalled the event loop. msgpack packs a
# tuple (and a str enum, as its str) in C without a Python object per row, several times
# faster. The child rebuilds the rows it gets.
def _pack_time(value: object) -> int:
    if isinstance(value, datetime):
        return to_us(value)
    raise TypeError(f"cannot send {type(value).__name__} to the store process")


def _outcomes(packed: bytes) -> list[SubmitOutcome]:
    kinds = {k.value: k for k in SubmitKind}
    return [SubmitOutcome(rid, kinds[kind], *rest)
            for rid, kind, *rest in msgpack.unpackb(packed, use_list=False)]


def _submit_rows(packed: bytes) -> list[SubmitRow]:
    # the unpacked rows as they are, for a store that takes them (``_PLAIN_ROWS``)
    return list(msgpack.unpackb(packed, use_list=False))


def _receipt_rows(packed: bytes) -> list[ReceiptRow]:
    # Straight to the rows the store applies (``rows.receipt_rows``): a Receipt with its
    # SmsResult and done_at datetime rebuilt here only to be taken apart again cost 1.6 us a
    # receipt, a tuple rebuilt for each 0.5 us with the unpacking, the unpacked ones as they
    # are 0.4 us (in the e2e bench).
    return keyed_receipt_rows(list(msgpack.unpackb(packed, use_list=False)))


def _recipient_rows(packed: bytes) -> list[RecipientRow]:
    # raw=False: str stays str and the ctn hash (bin) bytes; maps are the variables' dicts
    return list(map(RecipientRow._make, msgpack.unpackb(packed, raw=False)))


_Rebuild = Callable[[bytes], list[Any]]

#: method -> (the position of the argument sent as msgpack, how the child rebuilds it, the
#: store method it then calls)
_PACKED_ROWS: dict[str, tuple[int, _Rebuild, str]] = {
    "record_submit_results": (0, _outcomes, "record_submit_results"),
    "record_receipts": (0, _receipt_rows, "record_receipt_rows"),
    "add_recipients": (1, _recipient_rows, "add_recipients")}

#: The plain-tuple variants of the hot calls a store may have (SQLite's: ``rows.SubmitRow``,
#: ``rows.ClaimedRow``): method -> (the variant, how its packed argument is rebuilt, if it has
#: one). The child calls those, and builds no NamedTuple for each row only to have it taken
#: apart (a submit result, 0.5 us) or packed again (a claimed recipient, 0.4 us).
_PLAIN_ROWS: dict[str, tuple[str, _Rebuild | None]] = {
    "record_submit_results": ("record_submit_rows", _submit_rows),
    "claim_for_send": ("claim_rows", None)}


def _child_calls(store: Store) -> dict[str, tuple[str, int, _Rebuild | None]]:
    """method -> (the store method the child calls, the position of the argument sent as
    msgpack, how the child rebuilds it; None: nothing to rebuild), for ``store``."""
    calls: dict[str, tuple[str, int, _Rebuild | None]] = {
        name: (method, at, rebuild) for name, (at, rebuild, method) in _PACKED_ROWS.items()}
    for name, (variant, rebuild) in _PLAIN_ROWS.items():
        if hasattr(store, variant):
            calls[name] = (variant, 0, rebuild)
    return calls


# The other way: a claim's rows come back as msgpack too. Pickled, each ClaimedRecipient went
# through a Python-level reduce in the child (1.0 us a row, against 0.1 us packed); the
# variables are packed with the options the store itself keeps them in (rows.pack_variables),
# so they come back exactly as the store read them.
def _claimed(packed: bytes) -> list[ClaimedRecipient]:
    return list(map(ClaimedRecipient._make, msgpack.unpackb(packed, raw=False)))


#: method -> how the engine rebuilds the child's answer from msgpack bytes
_PACKED_RESULTS: dict[str, Callable[[bytes], list[Any]]] = {"claim_for_send": _claimed}


class StoreProcessLost(OSError):
    """The store's process died (killed, out of memory): a store outage until a new one runs."""


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """The child: read the config, open the store, then answer calls until the pipe closes
    or says stop."""
    # A ^C or a service manager's SIGTERM reaches the engine's whole process group: the store
    # must not leave in the middle of the engine's graceful stop; it leaves when the engine
    # closes it, or when the pipe closes because the engine is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _answer_calls(conn)
    except (EOFError, OSError):  # the engine is gone (killed): nobody to answer
        pass


def _answer_calls(conn: multiprocessing.connection.Connection) -> None:
    from dispatch import interpreter
    from dispatch.store import open_store

    interpreter.limit_malloc_arenas()  # before any thread
    config, log_settings = conn.recv()
    if log_settings is not None:  # the engine's log lines, from this process too
        configure_logging(*log_settings)
    try:
        store = open_store(config)
    except Exception as exc:
        conn.send((False, _portable(exc)))
        return
    try:
        interpreter.tune()
        conn.send((True, None))
        calls = _child_calls(store)
        while (call := conn.recv()) is not None:
            name, args = call
            try:
                method, at, rebuild = calls.get(name, (name, 0, None))
                if rebuild is not None:
                    args = (*args[:at], rebuild(args[at]), *args[at + 1:])
                result = getattr(store, method)(*args)
                if name in _PACKED_RESULTS:
                    result = msgpack.packb(result, use_bin_type=True)
            except Exception as exc:
                conn.send((False, _portable(exc)))
                continue
            try:
                conn.send((True, result))
            except OSError:
                raise
            except Exception as exc:  # the result did not pickle (nothing was written yet)
                conn.send((False, _portable(exc)))
    finally:
        store.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its text (a store error with
    an unpicklable argument must still reach the caller as an error, not kill the child)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class _Waiter:
    """One call's answer, handed from the link's reader thread to the calling thread."""

    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: tuple[bool, Any] = (False, None)

    def settle(self, reply: tuple[bool, Any]) -> None:
        self.reply = reply
        self.done.set()


class _Link:
    """One child and its socket. Calls are sent in order under a lock, each with a waiter
    queued in the same order; one reader thread hands each answer to the oldest waiter (the
    child answers in the order it was asked). So several threads can have calls in flight:
    the child takes the next one as soon as it finished the last, without waiting for the
    engine to read the answer and make its next call."""

    def __init__(self, conn: multiprocessing.connection.Connection,
                 proc: subprocess.Popen[bytes]) -> None:
        self.conn, self.proc = conn, proc
        self._send_lock = threading.Lock()
        self._waiting: deque[_Waiter] = deque()
        self.broken: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name="store-process-reader",
                                        daemon=True)
        self._reader.start()

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        # Pickled before anything is queued: arguments that do not pickle raise here, and no
        # waiter is left behind to take the next call's answer.
        payload = pickle.dumps((name, args), pickle.HIGHEST_PROTOCOL)
        waiter = _Waiter()
        with self._send_lock:
            if self.broken is not None:
                raise StoreProcessLost(f"store process lost before {name}")
            self._waiting.append(waiter)  # before the send: the answer may come at once
            try:
                self.conn.send_bytes(payload)
            except OSError as exc:
                self._waiting.pop()
                self._break(exc)
                raise StoreProcessLost(f"store process lost during {name}: {exc}") from exc
        waiter.done.wait()
        ok, value = waiter.reply
        if ok:
            return value
        if isinstance(value, _Lost):
            raise StoreProcessLost(f"store process lost during {name}: {value.cause}")
        raise value

    def _read(self) -> None:
        try:
            while True:
                try:
                    reply = self.conn.recv()
                except (EOFError, OSError):
                    raise
                except Exception as exc:  # read whole but not unpickled: that call fails,
                    reply = (False, RuntimeError(  # the pairing of the others holds
                        f"the store's answer could not be read: {type(exc).__name__}: {exc}"))
                self._waiting.popleft().settle(reply)
        except (EOFError, OSError, IndexError) as exc:  # IndexError: an answer nobody asked
            with self._send_lock:  # for, so the pairing is lost: the link is broken too
                self._break(exc)

    def _break(self, exc: BaseException) -> None:
        """The child is gone: every call waiting for it fails (called with the send lock)."""
        if self.broken is None:
            self.broken = exc
        while self._waiting:
            self._waiting.popleft().settle((False, _Lost(exc or "EOF")))

    def close(self, timeout_s: float = 30.0) -> None:
        with self._send_lock:
            if self.broken is None:
                try:
                    self.conn.send(None)
                except OSError:
                    pass
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)  # the child's exit closed its end: the reader saw EOF
        self.conn.close()


class _Lost:
    """In a waiter's reply: the child died before it answered."""

    __slots__ = ("cause",)

    def __init__(self, cause: object) -> None:
        self.cause = cause


class StoreProcess:
    """A ``Store`` whose calls run in a child process (see the module doc). Safe to call from
    several threads: up to ``calls_in_flight`` at once is what ``AsyncStore`` allows it."""

    #: What ``/diagnostics`` shows as the backend.
    backend = "sqlite"
    #: How many calls ``AsyncStore`` lets wait in the pipe at once: the child runs them one
    #: after the other, in the order they were sent, as the store thread ran them.
    calls_in_flight = 3

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._lock = threading.Lock()  # starting and dropping links
        self._link: _Link | None = None
        self._closed = False
        self._link = self._start()

    @property
    def pid(self) -> int | None:
        link = self._link
        return link.proc.pid if link is not None else None

    def _start(self) -> _Link:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dispatch.store.process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
            conn = multiprocessing.connection.Connection(os.dup(ours.fileno()))
        try:
            conn.send((self.config, stderr_settings()))
            ok, value = conn.recv()
        except (EOFError, OSError) as exc:
            conn.close()
            code = _reap(proc)
            raise StoreProcessLost(f"store process exited at start (code {code})") from exc
        if not ok:
            conn.close()
            _reap(proc)
            raise value
        return _Link(conn, proc)

    def _current(self) -> _Link:
        with self._lock:
            if self._closed:  # a call after close must not start a child nobody closes
                raise RuntimeError("the store process is closed")
            if self._link is None:
                self._link = self._start()
                log_event(log, logging.WARNING, "store process restarted", pid=self.pid)
            return self._link

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        link = self._current()
        try:
            return link.call(name, args)
        except StoreProcessLost:
            with self._lock:
                if self._link is link:  # the first caller to see it drops the dead link
                    self._link = None
                    code = _reap(link.proc)
                    link.conn.close()
                    log_event(log, logging.ERROR, "store process died", exit_code=code)
            raise

    def close(self) -> None:
        with self._lock:
            link, self._link, self._closed = self._link, None, True
        if link is not None:
            link.close()

    def kill(self) -> None:
        """SIGKILL the child (tests: a store process that dies mid-run)."""
        link = self._link
        if link is not None:
            os.kill(link.proc.pid, signal.SIGKILL)


def _reap(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def _forward(name: str) -> Callable[..., Any]:
    positions = _MATERIALISE.get(name, ())
    at = _PACKED_ROWS[name][0] if name in _PACKED_ROWS else None
    unpack = _PACKED_RESULTS.get(name)

    def call(self: StoreProcess, *args: Any) -> Any:
        if at is not None and at < len(args):
            # A value msgpack cannot take (a lone surrogate) raises here, as the store's own
            # SQLite would: the writer then refuses that item, as before.
            rows = args[at] if isinstance(args[at], list | tuple) else list(args[at])
            args = (*args[:at], msgpack.packb(rows, default=_pack_time), *args[at + 1:])
        elif positions:
            args = tuple(list(a) if i in positions and not isinstance(a, list)
                         else a for i, a in enumerate(args))
        result = self._call(name, args)
        return result if unpack is None else unpack(result)

    call.__name__ = name
    return call


def _forward_methods(cls: type, protocol: type) -> None:
    """Give ``cls`` a forwarding method for each public method of ``protocol`` (``close``
    is the proxy's own)."""
    for name, value in vars(protocol).items():
        if callable(value) and not name.startswith("_") and name != "close":
            setattr(cls, name, _forward(name))


_forward_methods(StoreProcess, Store)


class ClusterStoreProcess(StoreProcess):
    """The PostgreSQL store in its own process: the ``Store`` and the ``Cluster`` methods
    (heartbeat, takeover, build leases). ``config.node_id`` must be set: it names this node
    in the cluster, and the engine's in-process reader uses the same one."""

    backend = "postgres"

    def __init__(self, config: StoreConfig) -> None:
        if not config.node_id:
            raise ValueError("ClusterStoreProcess needs StoreConfig.node_id")
        self.node_id = config.node_id
        super().__init__(config)


_forward_methods(ClusterStoreProcess, Cluster)


if __name__ == "__main__":
    _serve(multiprocessing.connection.Connection(int(sys.argv[1])))
