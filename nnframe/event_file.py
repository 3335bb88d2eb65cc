"""A TensorBoard event file written synchronously, with tensorboardX's record writer and protos.

tensorboardX's ``SummaryWriter`` hands every event to a ``multiprocessing``
queue whose feeder thread pickles it and whose writer thread unpickles and
writes it; on two cores those threads take the GIL from the training loop
(spiral: 86 us per step instead of 48). nnframe logs a few scalars every few
steps, so it writes each event in the calling thread: serialise, checksum,
append to a buffered file, and flush on evaluations, on a timer and at the end.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnframe.tracking import atomic_write_bytes, names_the_file

FLUSH_SECS = 10.0


BLOCKED_IMPORTS = ("torch", "boto3")


def import_tensorboardx() -> Any:
    """tensorboardX, imported without PyTorch and boto3.

    tensorboardX imports torch, when it is installed, only to accept torch
    tensors (about a second), and boto3 only to write to S3 (70 ms). nnframe
    logs floats and numpy arrays to local files, so each of them that the
    process has not already imported is blocked while tensorboardX loads,
    and tensorboardX falls back to numpy and local files.
    """
    if "tensorboardX" not in sys.modules:
        blocked = [name for name in BLOCKED_IMPORTS if name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            import tensorboardX
        finally:
            for name in blocked:
                del sys.modules[name]
    import tensorboardX
    import tensorboardX.event_file_writer
    import tensorboardX.proto.api_pb2
    import tensorboardX.proto.event_pb2
    import tensorboardX.proto.plugin_hparams_pb2
    import tensorboardX.proto.summary_pb2
    import tensorboardX.summary

    return tensorboardX


EVENT_FILE_MARK = ".tfevents."
"""In the name of every event file, and in no other file of a run directory: what TensorBoard reads."""
RUN_END_TAGS = ("final/", "_hparams_/session_end_info")
"""The prefixes of the tags a completed run ends with, which a later leg's end replaces."""


def trim_for_resume(logdir: Path, purge_step: int) -> None:
    """Take out of a run's event files the points its resume from step ``purge_step - 1`` logs again.

    They are what a killed run logged after its last checkpoint, at the old
    values. TensorBoard is told of them by the ``SessionLog.START`` at
    ``purge_step`` in the resume's file, but its server reads a run's first
    such event as the run's start, and its fast loader reads none: both drew
    the killed run's points, and the curve went back at the resume. A record
    cut short by a kill goes too.
    """
    _rewrite_each(logdir, lambda event, record: None if event.step >= purge_step else record, keep=None)


def drop_earlier_ends(logdir: Path, current: Path) -> None:
    """Take a completed run's ``final/`` points and HParams session end out of its files other than ``current``,
    which holds those of the run's new end: a completed run trained further ends again at its new last step.
    Called once the new end is on disk, so that a kill at any moment leaves the run an end."""
    _rewrite_each(logdir, _without_run_end, keep=current)


def _rewrite_each(logdir: Path, change: Callable[[Any, bytes], bytes | None], keep: Path | None) -> None:
    """Each event file of ``logdir`` but ``keep`` with ``change(event, record)`` for each record but the file's
    version (the record as it stays, None to drop it), written again atomically where something changed."""
    event_class = import_tensorboardx().proto.event_pb2.Event  # first: it keeps torch and boto3 out
    for path in sorted(Path(logdir).glob(f"*{EVENT_FILE_MARK}*")):
        if not path.is_file() or (keep is not None and path.name == keep.name):
            continue
        with names_the_file(path):
            raw = path.read_bytes()
        records = list(_records(raw))
        kept = []
        for record in records:
            event = event_class.FromString(record)
            changed = record if event.HasField("file_version") else change(event, record)
            if changed is not None:
                kept.append(changed)
        if kept != records or _file_length(records) != len(raw):
            atomic_write_bytes(path, b"".join(_framed(record) for record in kept), stem="trimmed-events")


def _without_run_end(event: Any, record: bytes) -> bytes | None:
    """``record`` without the values of a run's end; None where it held nothing else."""
    if not event.HasField("summary"):
        return record
    values = [value for value in event.summary.value if not value.tag.startswith(RUN_END_TAGS)]
    if len(values) == len(event.summary.value):
        return record
    if not values:
        return None
    del event.summary.value[:]
    event.summary.value.extend(values)
    return event.SerializeToString()


def _records(raw: bytes) -> Iterator[bytes]:
    """The records of a TFRecord file's bytes, up to the first that is cut short or does not check."""
    from tensorboardX.record_writer import masked_crc32c

    position = 0
    while position + 12 <= len(raw):
        header = raw[position:position + 8]
        (length,) = struct.unpack("<Q", header)
        end = position + 12 + length + 4
        if end > len(raw) or struct.unpack("<I", raw[position + 8:position + 12])[0] != masked_crc32c(header):
            return
        data = raw[position + 12:end - 4]
        if struct.unpack("<I", raw[end - 4:end])[0] != masked_crc32c(data):
            return
        yield data
        position = end


def _file_length(records: Iterable[bytes]) -> int:
    """The length of a file of ``records``: each has a length, its checksum, the data and the data's checksum."""
    return sum(12 + len(record) + 4 for record in records)


def _framed(data: bytes) -> bytes:
    from tensorboardX.record_writer import masked_crc32c

    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


class EventFile:
    """One ``events.out.tfevents.*`` file in ``logdir``.

    ``purge_step`` marks a resume: TensorBoard then hides the points at and
    after that step written by the interrupted run, so none are duplicated.
    ``suffix`` keeps two writers started in the same second from sharing a name.
    """

    def __init__(self, logdir: Path, purge_step: int | None = None, suffix: str = "") -> None:
        tbx = import_tensorboardx()
        self._Event = tbx.proto.event_pb2.Event
        self._Summary = tbx.proto.summary_pb2.Summary
        self._summaries = tbx.summary
        self._scalar_events: dict[tuple[str, ...], tuple[Any, list[Any]]] = {}
        os.makedirs(logdir, exist_ok=True)
        self._writer = tbx.event_file_writer.EventsWriter(os.path.join(str(logdir), "events"), suffix)
        self._flushed_at = time.monotonic()
        if purge_step is not None:
            log = tbx.proto.event_pb2.SessionLog(status=tbx.proto.event_pb2.SessionLog.START)
            self._write(self._Event(step=purge_step, session_log=log, wall_time=time.time()))
        self.flush()

    @property
    def path(self) -> Path:
        return Path(self._writer._file_name)

    def scalars(self, values: Mapping[str, float], step: int, wall_time: float | None = None) -> None:
        """All of a step's scalars in one event."""
        self.scalar_series(tuple(values), [(int(step), time.time() if wall_time is None else wall_time,
                                            values.values())])

    def scalar_series(self, tags: tuple[str, ...], rows: Iterable[tuple[int, float, Iterable[float]]]) -> None:
        """Several steps' scalars for one set of tags: an event per ``(step, wall_time, values)`` row.

        The event for a set of tags is built once and its values replaced on
        every later row: building the protobuf took 5 of the 8 microseconds
        that writing a logged spiral step's scalars cost. In a burst, a spiral
        step's row costs 2.9 us, against 4.2 through a dict and :meth:`scalars`.
        """
        event, entries = self._scalar_event(tags)
        write = self._writer.write_event
        with names_the_file(self.path):
            for step, wall_time, values in rows:
                for entry, value in zip(entries, values, strict=True):
                    entry.simple_value = value
                event.step = step
                event.wall_time = wall_time
                write(event)
        self._flush_when_due()

    def _scalar_event(self, tags: tuple[str, ...]) -> tuple[Any, list[Any]]:
        cached = self._scalar_events.get(tags)
        if cached is None:
            event = self._Event(summary=self._Summary(value=[self._Summary.Value(tag=tag) for tag in tags]))
            cached = self._scalar_events[tags] = (event, list(event.summary.value))
        return cached

    def text(self, tag: str, text: str, step: int) -> None:
        self.summary(self._summaries.text(tag, text), step)

    def histogram(self, tag: str, values: Any, step: int) -> None:
        try:
            summary = self._summaries.histogram(tag, values, "auto")
        except ValueError as exc:  # numpy finds no bins of finite width: the values span less than their rounding
            if "bins" not in str(exc):
                raise
            summary = self._one_bucket(tag, np.asarray(values, dtype=np.float64).reshape(-1))
        self.summary(summary, step)

    def _one_bucket(self, tag: str, values: np.ndarray) -> Any:
        """A histogram of values too close together for bins (a diverging bias at 1e17): one bucket holds all."""
        with np.errstate(over="ignore"):
            low, high, total = float(values.min()), float(values.max()), float(values.sum())
            sum_squares = float(values.dot(values))
        return self._summaries.histogram_raw(tag, min=low, max=high, num=values.size, sum=total,
                                             sum_squares=sum_squares, bucket_limits=[low, high],
                                             bucket_counts=[0, values.size])

    def session_start(self, hparams: Mapping[str, Any]) -> None:
        """The HParams plugin's session start: this run's hyperparameters, in this file (``add_hparams`` would
        make a sub-run).

        No experiment summary is written: TensorBoard takes the table's columns
        from the first one it finds, so runs of another config lost theirs.
        Without one it gathers every run's hyperparameters and scalar tags.
        """
        _, start, _ = self._summaries.hparams(dict(hparams), {})
        hparams_pb2 = import_tensorboardx().proto.plugin_hparams_pb2
        plugin_data = start.value[0].metadata.plugin_data
        content = hparams_pb2.HParamsPluginData.FromString(plugin_data.content)
        content.session_start_info.start_time_secs = time.time()  # tensorboardX leaves it 0: the HParams tab's time
        plugin_data.content = content.SerializeToString()
        self.summary(start, 0)

    def session_end(self, step: int) -> None:
        """The HParams plugin's session end, status success: TensorBoard keeps the first it finds in a run. At
        the run's last ``step``, so that a resume from an earlier checkpoint takes it out with the points after
        that checkpoint (:func:`trim_for_resume`)."""
        tbx = import_tensorboardx()
        hparams_pb2, status = tbx.proto.plugin_hparams_pb2, tbx.proto.api_pb2.Status
        content = hparams_pb2.HParamsPluginData(
            session_end_info=hparams_pb2.SessionEndInfo(status=status.Value("STATUS_SUCCESS"),
                                                        end_time_secs=time.time()), version=0)
        metadata = tbx.proto.summary_pb2.SummaryMetadata(plugin_data=tbx.proto.summary_pb2.SummaryMetadata.PluginData(
            plugin_name="hparams", content=content.SerializeToString()))
        self.summary(self._Summary(value=[self._Summary.Value(tag="_hparams_/session_end_info", metadata=metadata)]),
                     step)

    def summaries(self, summaries: Iterable[Any], step: int | None = None) -> None:
        for summary in summaries:
            self.summary(summary, step)

    def summary(self, summary: Any, step: int | None, wall_time: float | None = None) -> None:
        event = self._Event(summary=summary, wall_time=time.time() if wall_time is None else wall_time)
        if step is not None:
            event.step = int(step)
        self._write(event)

    def _write(self, event: Any) -> None:
        with names_the_file(self.path):
            self._writer.write_event(event)
        self._flush_when_due()

    def _flush_when_due(self) -> None:
        if time.monotonic() - self._flushed_at > FLUSH_SECS:
            self.flush()

    def flush(self) -> None:
        with names_the_file(self.path):
            self._writer.flush()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        self.flush()
        with names_the_file(self.path):
            self._writer.close()

    def __repr__(self) -> str:
        return f"EventFile({str(self.path)!r})"
