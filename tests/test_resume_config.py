"""Which differences between a run's config and the config it resumes with are accepted."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from nnframe.errors import ConfigError
from nnframe.resume_config import Change, differences, dotted, resume_changes

SAVED = {
    "name": "spiral",
    "model": [{"type": "affine", "out": 10}, {"type": "sigmoid"}],
    "optimizer": {"type": "sgd", "lr": 1.0},
    "train": {"epochs": 300, "batch_size": 30},
    "log": {"every": 10},
}


def changed(**changes):
    """SAVED with sections replaced (a list or a value) or updated (a dict)."""
    config = copy.deepcopy(SAVED)
    for section, values in changes.items():
        config[section] = {**config[section], **values} if isinstance(values, dict) else values
    return config


def check(now, overrides=(), recorded=()):
    return resume_changes(SAVED, now, list(overrides), list(recorded), Path("exp.yaml"), Path("runs/spiral/1"))


def test_differences_are_leaves_in_order_with_new_keys_last() -> None:
    now = changed(model=[{"type": "affine", "out": 20}, {"type": "tanh"}], optimizer={"momentum": 0.9})
    assert differences(SAVED, now) == [Change(("model", 0, "out"), 10, 20),
                                       Change(("model", 1, "type"), "sigmoid", "tanh"),
                                       Change(("optimizer", "momentum"), None, 0.9)]
    assert differences(SAVED, changed(model=[{"type": "affine"}])) == [Change(("model",), SAVED["model"],
                                                                              [{"type": "affine"}])]
    assert differences(SAVED, changed()) == []


def test_dotted_paths_read_like_config_errors() -> None:
    assert dotted(("model", 0, "out")) == "model[0].out"
    assert dotted(("optimizer", "lr")) == "optimizer.lr"
    assert dotted(("name",)) == "name"


def test_length_logging_and_checkpointing_may_change_from_anywhere() -> None:
    now = changed(train={"epochs": 400}, log={"every": 5})
    assert [dotted(c.path) for c in check(now)] == ["train.epochs", "log.every"]


def test_other_fields_change_only_through_this_resumes_overrides() -> None:
    now = changed(optimizer={"type": "adam", "lr": 0.01})
    with pytest.raises(ConfigError, match=r"optimizer.type: 'sgd' in the run, 'adam' now; optimizer.lr: 1.0 in "
                                          r"the run, 0.01 now\. The run was started without overrides"):
        check(now)
    assert len(check(now, overrides=["optimizer={type: adam, lr: 0.01}"])) == 2
    with pytest.raises(ConfigError, match=r"optimizer.type"):
        check(now, overrides=["optimizer.lr=0.01"])


def test_a_refusal_offers_the_latest_value_of_each_recorded_override() -> None:
    now = changed(optimizer={"lr": 1.0}, train={"batch_size": 10})
    recorded = ["optimizer.lr=0.5", "train.batch_size=30", "optimizer.lr=0.3"]
    with pytest.raises(ConfigError, match=r"give the overrides it ran with again: optimizer.lr=0.3 "
                                          r"train.batch_size=30; to change a value on purpose"):
        check(now, recorded=recorded)


def test_the_name_never_changes() -> None:
    with pytest.raises(ConfigError, match=r"name: 'spiral' in the run, 'other' now\. a run keeps its name"):
        check(changed(name="other"), overrides=["name=other"])
