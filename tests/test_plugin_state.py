"""run.state made ready for a checkpoint: plain values copied, everything else named where it is."""

from __future__ import annotations

import numpy as np

from nnframe.plugin_state import saved_state


def test_plain_values_are_copied_as_json_gives_them_back() -> None:
    state = {"stopper": {"best": float("inf"), "bad": np.int64(2), "loss": np.float32(0.5), "seen": (1, [2.5])},
             "note": None, "on": np.bool_(True)}
    plain, left_out = saved_state(state)
    assert left_out == {}
    assert plain == {"stopper": {"best": float("inf"), "bad": 2, "loss": 0.5, "seen": [1, [2.5]]},
                     "note": None, "on": True}
    assert [type(plain["stopper"][key]) for key in ("bad", "loss")] == [int, float] and plain["on"] is True
    state["stopper"]["best"] = 1.0
    assert plain["stopper"]["best"] == float("inf")


def test_each_key_that_cannot_be_saved_is_named_and_left_out_and_the_rest_is_kept() -> None:
    loop: list = [1]
    loop.append(loop)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    plain, left_out = saved_state({"kept": 1, "array": np.zeros(3), 7: "seven", "loop": loop,
                                   "deep": {"x": {2: "two"}}, "ids": {1, 2}, "nested": deep})
    assert plain == {"kept": 1}
    assert left_out == {
        "array": "run.state['array'] is a numpy.ndarray (.tolist() makes it a list)",
        7: "run.state has the key 7, which is not a string",
        "loop": "run.state['loop'][1] holds itself",
        "deep": "run.state['deep']['x'] has the key 2, which is not a string",
        "ids": "run.state['ids'] is a set",
        "nested": "run.state['nested']" + "[0]" * 100 + " is nested more than 100 containers deep",
    }


def test_a_value_held_twice_is_no_loop() -> None:
    shared = [1, 2]
    plain, left_out = saved_state({"a": {"x": shared, "y": shared}})
    assert left_out == {} and plain == {"a": {"x": [1, 2], "y": [1, 2]}}
