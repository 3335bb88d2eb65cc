"""Tests for nnframe.batches.BatchIterator: coverage, shuffling, determinism, drop_last, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnframe.batches import BatchIterator
from nnframe.errors import CheckpointError, DataError, UserError


def _epochs(batches: BatchIterator, count: int) -> list[list[np.ndarray]]:
    return [list(batches) for _ in range(count)]


def _steps(batches: BatchIterator, count: int) -> list[list[int]]:
    return [batches.next_batch().tolist() for _ in range(count)]


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 3, False, [3, 3, 3, 1]),  # 10 = 3 + 3 + 3 + 1
    (10, 3, True, [3, 3, 3]),      # the 1 left over is dropped
    (9, 3, False, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (5, 5, False, [5]),
    (7, 2, True, [2, 2, 2]),       # 7 // 2 = 3 batches
])
def test_batch_sizes_and_batches_per_epoch(n, batch_size, drop_last, sizes):
    batches = BatchIterator(n, batch_size, np.random.default_rng(0), drop_last=drop_last)
    assert batches.batches_per_epoch == len(sizes)
    for epoch in _epochs(batches, 3):
        assert [len(batch) for batch in epoch] == sizes
        seen = np.concatenate(epoch)
        assert len(np.unique(seen)) == len(seen)
        assert set(seen.tolist()) <= set(range(n))
        if not drop_last:
            assert sorted(seen.tolist()) == list(range(n))


def test_drop_last_drops_different_examples_each_epoch():
    batches = BatchIterator(10, 3, np.random.default_rng(0), drop_last=True)
    dropped = [set(range(10)) - set(np.concatenate(epoch).tolist()) for epoch in _epochs(batches, 5)]
    assert all(len(d) == 1 for d in dropped)
    assert len({frozenset(d) for d in dropped}) > 1


def test_each_epoch_is_reshuffled():
    batches = BatchIterator(50, 10, np.random.default_rng(0))
    orders = [np.concatenate(epoch) for epoch in _epochs(batches, 3)]
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.arange(50))


def test_same_seed_same_batches_other_seed_other_batches():
    first = _steps(BatchIterator(20, 6, np.random.default_rng(7)), 12)
    again = _steps(BatchIterator(20, 6, np.random.default_rng(7)), 12)
    other = _steps(BatchIterator(20, 6, np.random.default_rng(8)), 12)
    assert first == again
    assert first != other


def test_without_shuffle_the_order_is_the_data_order_and_rng_is_unused():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    batches = BatchIterator(5, 2, rng, shuffle=False)
    assert [b.tolist() for b in _epochs(batches, 2)[1]] == [[0, 1], [2, 3], [4]]
    assert rng.bit_generator.state == before


def test_counters_and_iteration_continue_a_broken_off_epoch():
    batches = BatchIterator(10, 3, np.random.default_rng(0))
    order = batches.order.copy()
    for batch in batches:
        break
    assert (batches.epoch, batches.position) == (0, 1)
    rest = list(batches)
    assert np.array_equal(np.concatenate([batch, *rest]), order)
    assert (batches.epoch, batches.position) == (1, 0)
    assert not np.array_equal(batches.order, order)


def test_next_batch_runs_across_epochs():
    batches = BatchIterator(4, 2, np.random.default_rng(0))
    _steps(batches, 5)  # 2 batches per epoch: steps 1-2 epoch 0, 3-4 epoch 1, 5 epoch 2
    assert (batches.epoch, batches.position) == (2, 1)


def _roundtrip_npz(state: dict, tmp_path) -> dict:
    np.savez(tmp_path / "batches.npz", **state)
    with np.load(tmp_path / "batches.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _roundtrip_json(state: dict, tmp_path) -> dict:
    text = json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in state.items()})
    return json.loads(text)


@pytest.mark.parametrize("roundtrip", [lambda state, tmp_path: state, _roundtrip_npz, _roundtrip_json])
@pytest.mark.parametrize("drop_last", [False, True])
def test_resume_mid_epoch_gives_the_same_batches(roundtrip, drop_last, tmp_path):
    batches = BatchIterator(23, 5, np.random.default_rng(3), drop_last=drop_last)
    _steps(batches, 7)  # into the second epoch
    state = roundtrip(batches.state_dict(), tmp_path)
    expected = _steps(batches, 15)

    resumed = BatchIterator(23, 5, np.random.default_rng(999), drop_last=drop_last)
    resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.position) == (1, 7 - resumed.batches_per_epoch)
    assert _steps(resumed, 15) == expected


def test_resume_with_a_mersenne_twister():
    batches = BatchIterator(12, 5, np.random.Generator(np.random.MT19937(1)))
    _steps(batches, 4)
    state = batches.state_dict()
    expected = _steps(batches, 6)
    resumed = BatchIterator(12, 5, np.random.Generator(np.random.MT19937(2)))
    resumed.load_state_dict(state)
    assert _steps(resumed, 6) == expected


def test_state_dict_is_a_snapshot():
    batches = BatchIterator(10, 3, np.random.default_rng(0))
    state = batches.state_dict()
    _steps(batches, 4)
    assert (state["epoch"], state["position"]) == (0, 0)
    assert state["order"] is not batches.order


@pytest.mark.parametrize("change, expected", [
    ({"n": 11}, "the run was trained on 11 training examples, but this config gives 10; a resume needs the run's "
                "training data"),
    ({"batch_size": 4}, "the run was trained in batches of 4, but this config has train.batch_size 3"),
    ({"order": np.arange(9)}, "the saved batch position is corrupt: order of shape (9,)"),
    ({"position": 4}, "batch 4 of 4"),
    ({"rng": json.dumps({"bit_generator": "MT19937", "state": {"key": [0], "pos": 0}})},
     "does not fit this run's PCG64 generator"),
])
def test_load_state_dict_rejects_a_state_for_other_data(change, expected):
    state = {**BatchIterator(10, 3, np.random.default_rng(0)).state_dict(), **change}
    with pytest.raises(CheckpointError) as info:
        BatchIterator(10, 3, np.random.default_rng(0)).load_state_dict(state)
    assert expected in str(info.value)


def test_a_dataset_smaller_than_one_batch_is_an_error():
    with pytest.raises(DataError, match="^dataset has 20 training examples, fewer than batch_size 30;"):
        BatchIterator(20, 30, np.random.default_rng(0))


def test_batch_size_must_be_positive():
    with pytest.raises(UserError, match="batch_size must be at least 1; found 0"):
        BatchIterator(20, 0, np.random.default_rng(0))


def test_repr():
    batches = BatchIterator(10, 3, np.random.default_rng(0))
    batches.next_batch()
    assert repr(batches) == ("BatchIterator(n=10, batch_size=3, drop_last=False, shuffle=True, "
                             "epoch=0, position=1/4)")
