"""``nnframe board``: TensorBoard on a runs directory.

TensorBoard is an optional extra (``pip install 'nnframe[board]'``); training
writes event files with tensorboardX alone, so nnframe does not need it.
"""

from __future__ import annotations

import errno
import importlib.util
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nnframe.errors import Terminated, UserError, raise_terminated
from nnframe.held_signals import not_ignored

INSTALL_HINT = ("pip install -e '.[board]' in a clone of nnframe (pip install 'nnframe[board]' where it is "
                "installed from an index)")
TERMINATED_EXIT = 143
RELAY_DRAIN_S = 5.0
"""How long TensorBoard's last output may take to pass on after it exits (a slow reader of ours)."""


def launch_board(logdir: Path, host: str = "127.0.0.1", port: int = 6006) -> int:
    """Run TensorBoard on ``logdir`` until it is stopped; returns its exit code (0 after Ctrl+C, 143 after SIGTERM).

    Each run appears in TensorBoard as ``<experiment name>/<timestamp>``.
    """
    logdir = Path(logdir)
    _require_tensorboard()
    if logdir.exists() and not logdir.is_dir():
        raise UserError(f"{str(logdir)!r} is a file, not a runs directory; name the directory that holds the runs "
                        "(`runs` by default), or one run's directory")
    if not logdir.is_dir():
        raise UserError(f"runs directory {str(logdir)!r} does not exist; "
                        "train a run first (`nnframe train CONFIG`) or name the directory to show")
    _require_free_port(host, port)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
               "--host", host, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    relay = threading.Thread(target=_relay, args=(process.stdout,), daemon=True)
    relay.start()
    try:
        with _sigterm_raises():
            try:
                return process.wait()
            except KeyboardInterrupt:
                return _stop(process)
            except Terminated:
                _stop(process)
                return TERMINATED_EXIT
    finally:
        relay.join(RELAY_DRAIN_S)


def _relay(output: IO[bytes]) -> None:
    """TensorBoard's own output, passed on to this process's stderr, which drops it once nobody reads it; had
    TensorBoard written to the terminal's pipe itself, a reader quitting (``2>&1 | head -1``) would stop it."""
    stream = getattr(sys.stderr, "buffer", None)
    for line in output:
        try:
            if stream is not None:
                stream.write(line)
                stream.flush()
        except (OSError, ValueError):
            stream = None  # a stream that cannot take it any more; TensorBoard's output is still drained


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM while TensorBoard runs raises :class:`~nnframe.errors.Terminated`, so that it is stopped too
    instead of being left behind (also where the CLI's own handler is not installed)."""
    if not not_ignored((signal.SIGTERM,)):  # ignored since the process started: it stays so
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _require_tensorboard() -> None:
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(f"`nnframe board` needs TensorBoard, which is not installed; "
                        f"install it with: {INSTALL_HINT}")


def _require_free_port(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot use host {host!r} for TensorBoard: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            remedy = ("choose another port with --port" if exc.errno in (errno.EADDRINUSE, errno.EACCES)
                      else "choose another address with --host (127.0.0.1 for this machine alone, 0.0.0.0 for all)")
            raise UserError(f"cannot start TensorBoard on {host}:{port}: {exc.strerror}; {remedy}") from exc


def _stop(process: subprocess.Popen) -> int:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return 0
