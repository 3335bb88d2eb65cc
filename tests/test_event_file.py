"""The event file itself: records checked by TensorBoard's own code, and the reused scalar events."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboard_masked_crc32c

from nnframe.event_file import EventFile


def records(path: Path) -> list[bytes]:
    """The data of every record, after checking both checksums with TensorBoard's pure-Python CRC-32C."""
    raw, found = path.read_bytes(), []
    while raw:
        header, header_crc = raw[:8], struct.unpack("<I", raw[8:12])[0]
        assert header_crc == tensorboard_masked_crc32c(header)
        length = struct.unpack("<Q", header)[0]
        data, data_crc = raw[12:12 + length], struct.unpack("<I", raw[12 + length:16 + length])[0]
        assert data_crc == tensorboard_masked_crc32c(data)
        found.append(data)
        raw = raw[16 + length:]
    return found


def scalar_points(path: Path) -> list[tuple[int, float, dict[str, float]]]:
    return [(event.step, event.wall_time, {v.tag: v.simple_value for v in event.summary.value})
            for event in LegacyEventFileLoader(str(path)).Load() if event.summary.value]


def test_scalars_reuse_one_event_per_tag_set_and_read_back_exactly(tmp_path):
    writer = EventFile(tmp_path)
    writer.scalars({"train/loss": 0.5, "train/lr": 1.0}, step=1, wall_time=100.0)
    writer.scalars({"val/loss": 0.75}, step=1, wall_time=101.0)
    writer.scalars({"train/loss": 0.25, "train/lr": np.float64(0.1)}, step=2, wall_time=102.0)
    writer.close()

    assert scalar_points(writer.path) == [
        (1, 100.0, {"train/loss": 0.5, "train/lr": 1.0}),
        (1, 101.0, {"val/loss": 0.75}),
        (2, 102.0, {"train/loss": 0.25, "train/lr": pytest.approx(0.1, rel=1e-7)}),
    ]


def test_a_scalar_series_writes_an_event_per_row_in_order(tmp_path):
    writer = EventFile(tmp_path)
    tags = ("train/loss", "train/lr")
    writer.scalar_series(tags, [(10, 100.0, [0.5, 1.0]), (20, 101.0, (0.25, 0.5))])
    writer.scalar_series(tags, iter([(30, 102.0, [0.125, 0.25])]))
    writer.close()

    assert scalar_points(writer.path) == [
        (10, 100.0, {"train/loss": 0.5, "train/lr": 1.0}),
        (20, 101.0, {"train/loss": 0.25, "train/lr": 0.5}),
        (30, 102.0, {"train/loss": 0.125, "train/lr": 0.25}),
    ]


def test_a_row_with_more_or_fewer_values_than_tags_is_refused(tmp_path):
    writer = EventFile(tmp_path)
    with pytest.raises(ValueError):
        writer.scalar_series(("train/loss", "train/lr"), [(1, 100.0, [0.5])])
    writer.close()


def test_the_file_starts_with_its_version_and_every_record_checks_out(tmp_path):
    writer = EventFile(tmp_path, purge_step=7)
    writer.text("config", "a: 1", step=0)
    writer.histogram("weights/W", np.arange(10.0), step=3)
    writer.close()

    events = list(LegacyEventFileLoader(str(writer.path)).Load())
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 7 and events[1].session_log.status == events[1].session_log.START
    assert events[1].wall_time > 1e9  # a real time, as every other event has
    assert len(records(writer.path)) == len(events) == 4
    assert writer.path.name.startswith("events.out.tfevents.")


def test_values_too_close_for_bins_get_one_bucket_instead_of_an_error(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = EventFile(tmp_path)
    writer.histogram("weights/b", np.array([1e17]), step=1)  # numpy: "Too many bins for data range"
    writer.histogram("weights/W", np.full(4, -3e20), step=1)
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    events.Reload()
    (bias,) = events.Histograms("weights/b")
    assert (bias.step, bias.histogram_value.min, bias.histogram_value.max, bias.histogram_value.num) == (1, 1e17, 1e17, 1)
    (weights,) = events.Histograms("weights/W")
    assert (weights.histogram_value.num, weights.histogram_value.sum) == (4, -1.2e21)
    assert sum(weights.histogram_value.bucket) == 4
