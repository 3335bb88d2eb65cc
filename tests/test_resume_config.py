"""Which differences between a run's config and the config it resumes with are accepted."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from nnframe.errors import ConfigError
from nnframe.config_errors import format_path
from nnframe.config_loader import parse_override
from nnframe.resume_config import Change, as_override, differences, overrides_to, resume_changes

SAVED = {
    "name": "spiral",
    "seed": 7,
    "model": [{"type": "affine", "out": 10}, {"type": "sigmoid"}],
    "optimizer": {"type": "sgd", "lr": 1.0},
    "train": {"epochs": 300, "batch_size": 30, "eval_every": 5},
    "log": {"every": 10},
}


def changed(**changes):
    """SAVED with sections replaced (a list or a value) or updated (a dict)."""
    config = copy.deepcopy(SAVED)
    for section, values in changes.items():
        config[section] = {**config[section], **values} if isinstance(values, dict) else values
    return config


def check(now, overrides=()):
    return resume_changes(SAVED, now, list(overrides), Path("exp.yaml"), Path("runs/spiral/1"))


def test_differences_are_leaves_in_order_with_new_keys_last() -> None:
    now = changed(model=[{"type": "affine", "out": 20}, {"type": "tanh"}], optimizer={"momentum": 0.9})
    assert differences(SAVED, now) == [Change(("model", 0, "out"), 10, 20),
                                       Change(("model", 1, "type"), "sigmoid", "tanh"),
                                       Change(("optimizer", "momentum"), None, 0.9)]
    assert differences(SAVED, changed(model=[{"type": "affine"}])) == [Change(("model",), SAVED["model"],
                                                                              [{"type": "affine"}])]
    assert differences(SAVED, changed()) == []


def test_length_logging_and_checkpointing_may_change_from_anywhere() -> None:
    now = changed(train={"epochs": 400}, log={"every": 5})
    assert [format_path(c.path) for c in check(now)] == ["train.epochs", "log.every"]


def test_callbacks_change_through_this_resumes_overrides_and_a_run_from_before_them_had_none() -> None:
    """They change where a run stops, so one given as an override of the start and not repeated is refused, as an
    unrepeated optimizer.lr is."""
    stopper = [{"type": "early_stopping", "patience": 3}]
    assert check(changed(callbacks=[])) == []  # SAVED, as a run from before callbacks, has no such key
    with pytest.raises(ConfigError, match=r"callbacks: \[\] in the run, .* now"):
        check(changed(callbacks=stopper))
    assert len(check(changed(callbacks=stopper), overrides=["callbacks=[{type: early_stopping, patience: 3}]"])) == 1
    with pytest.raises(ConfigError, match=r"To continue the run as it was, add: "
                                          r"'callbacks=\[\{type: early_stopping, patience: 3\}\]'"):
        resume_changes({**SAVED, "callbacks": stopper}, changed(callbacks=[]), [], Path("exp.yaml"), Path("r"))


def test_other_fields_change_only_through_this_resumes_overrides() -> None:
    now = changed(optimizer={"lr": 0.01}, train={"eval_every": 10})
    with pytest.raises(ConfigError, match=r"optimizer.lr: 1.0 in the run, 0.01 now; train.eval_every: 5 in the "
                                          r"run, 10 now\. To continue the run as it was, add: optimizer.lr=1.0 "
                                          r"train.eval_every=5; to change a value on purpose"):
        check(now)
    assert len(check(now, overrides=["optimizer={type: sgd, lr: 0.01}", "train.eval_every=10"])) == 2
    with pytest.raises(ConfigError, match=r"train.eval_every"):
        check(now, overrides=["optimizer.lr=0.01"])


def test_the_advice_to_continue_as_it_was_brings_back_the_training_length_too() -> None:
    """A run started with train.epochs=50000 and another lr, resumed from the file, whose length is 300: the
    advice names the length too, where following an advice of the lr alone would end the run at 300 epochs."""
    now = changed(optimizer={"lr": 0.01}, train={"epochs": 300})
    saved = changed(train={"epochs": 50000})
    with pytest.raises(ConfigError, match=r"optimizer.lr: 1.0 in the run, 0.01 now\. To continue the run as it was, "
                                          r"add: optimizer.lr=1.0 \(train.epochs is 50000 in the run and 300 now: add "
                                          r"train.epochs=50000 to keep its length\); to change"):
        resume_changes(saved, now, [], Path("exp.yaml"), Path("runs/spiral/1"))
    with pytest.raises(ConfigError, match=r"add: optimizer.lr=1.0; to change"):  # a length given now is meant
        resume_changes(saved, now, ["train.epochs=300"], Path("exp.yaml"), Path("runs/spiral/1"))


def test_an_override_of_a_components_type_covers_its_fields() -> None:
    saved = {**SAVED, "data": {"type": "spiral", "points_per_class": 100}}
    now = {**SAVED, "data": {"type": "npz", "path": "d.npz"}}
    changes = resume_changes(saved, now, ["data.type=npz", "data.path=d.npz"], Path("exp.yaml"), Path("r"))
    assert [format_path(c.path) for c in changes] == ["data.type", "data.points_per_class", "data.path"]


@pytest.mark.parametrize(("section", "value", "field"), [
    ("model", [{"type": "affine", "out": 20}, {"type": "sigmoid"}], "model[0].out"),
    ("train", {"dtype": "float64"}, "train.dtype"),
    ("train", {"batch_size": 10}, "train.batch_size"),
    ("train", {"drop_last": True}, "train.drop_last"),
    ("optimizer", {"type": "adam"}, "optimizer.type"),
    ("seed", 8, "seed"),
])
def test_the_seed_model_dtype_batching_and_optimizer_type_never_change(section: str, value, field: str) -> None:
    override = f"{field.replace('[0]', '.0')}=x"
    with pytest.raises(ConfigError, match=rf"{re.escape(field)}: .* now\. A run keeps its name, seed, model, "
                                          r"train.dtype, train.batch_size, train.drop_last and optimizer.type .*; "
                                          r"start a new run to change them\. To continue the run as it was, add: "):
        check(changed(**{section: value}), overrides=[override])


def test_a_refusal_gives_back_a_retyped_component_whole_and_keeps_the_accepted_changes() -> None:
    saved = {**SAVED, "optimizer": {**SAVED["optimizer"], "schedule": {"type": "step", "step_size": 100}}}
    now = {**changed(train={"epochs": 400}), "optimizer": {**SAVED["optimizer"],
                                                           "schedule": {"type": "cosine", "min_lr": 0.0}}}
    with pytest.raises(ConfigError) as caught:
        resume_changes(saved, now, [], Path("exp.yaml"), Path("runs/spiral/1"))
    assert ("add: 'optimizer.schedule={type: step, step_size: 100}' (train.epochs is 300 in the run and 400 now: "
            "add train.epochs=300 to keep its length); to change") in str(caught.value)


@pytest.mark.parametrize(("path", "value", "text"), [
    (("train", "epochs"), 3000, "train.epochs=3000"),
    (("model", 0, "out"), 20, "model.0.out=20"),
    (("checkpoint", "best_metric"), None, "checkpoint.best_metric=null"),
    (("name",), "yes", "name='yes'"),
    (("optimizer", "lr"), 1e-5, "optimizer.lr=1.0e-05"),
    (("data",), {"type": "npz", "path": "d.npz"}, "data={type: npz, path: d.npz}"),
])
def test_overrides_are_written_as_the_command_line_reads_them(path, value, text) -> None:
    assert as_override(path, value) == text
    parsed_path, parsed_value = parse_override(text)
    assert (tuple(parsed_path), parsed_value) == (path, value)


def test_overrides_to_turn_one_config_into_the_other() -> None:
    target = changed(optimizer={"lr": 0.5}, model=[{"type": "affine", "out": 10}, {"type": "tanh"}])
    found = overrides_to(SAVED, target)
    assert found == ["model.1={type: tanh}", "optimizer.lr=0.5"]
    assert overrides_to(SAVED, SAVED) == []


def test_the_name_never_changes() -> None:
    with pytest.raises(ConfigError, match=r"name: 'spiral' in the run, 'other' now\. A run keeps its name"):
        check(changed(name="other"), overrides=["name=other"])


def test_another_experiments_config_is_named_as_the_cause_not_listed_field_by_field() -> None:
    with pytest.raises(ConfigError) as info:
        check(changed(name="digits", model=[{"type": "affine", "out": 10}]))
    assert str(info.value) == ("cannot resume run runs/spiral/1 with this config: the run is experiment 'spiral' and "
                               "the config 'digits'; resume it with its own config, runs/spiral/1/config.yaml")


def resolver(overrides: list[str]) -> dict:
    """SAVED as the config file, with ``key=value`` overrides of top-level scalars."""
    config = copy.deepcopy(SAVED)
    for text in overrides:
        key, value = text.split("=")
        config[key] = int(value)
    return config


def test_an_override_that_causes_the_refusal_is_to_be_left_out() -> None:
    now = changed(seed=8)
    with pytest.raises(ConfigError, match=r"seed: 7 in the run, 8 now\. .* To continue the run as it was, "
                                          r"leave out: seed=8$"):
        resume_changes(SAVED, now, ["seed=8"], Path("exp.yaml"), Path("r"), resolve=resolver)


def test_where_leaving_the_override_out_is_not_enough_the_way_back_says_what_it_overrides() -> None:
    now = changed(seed=8)

    def file_seed_9(overrides: list[str]) -> dict:
        return resolver(overrides) if overrides else {**SAVED, "seed": 9}

    with pytest.raises(ConfigError, match=r"To continue the run as it was, add: seed=7 \(they override seed=8\)$"):
        resume_changes(SAVED, now, ["seed=8"], Path("exp.yaml"), Path("r"), resolve=file_seed_9)


def test_where_single_fields_do_not_validate_the_advice_gives_whole_sections() -> None:
    now = changed(optimizer={"lr": 0.5})

    def resolve(overrides: list[str]) -> dict:
        """A config in which optimizer.lr cannot be set alone, as a field of a part the file leaves out."""
        config = copy.deepcopy(now)
        for text in overrides:
            path, value = parse_override(text)
            if path == ["optimizer", "lr"]:
                raise ConfigError("field optimizer.type: missing required key 'type'")
            config[path[0]] = value
        return config

    with pytest.raises(ConfigError, match=re.escape("add: 'optimizer={type: sgd, lr: 1.0}'; to change")):
        resume_changes(SAVED, now, [], Path("exp.yaml"), Path("r"), resolve=resolve)


def test_a_change_names_booleans_and_nulls_as_the_config_writes_them() -> None:
    assert Change(("log", "tensorboard"), False, True).describe() == "log.tensorboard: false in the run, true now"
    assert Change(("train", "max_steps"), None, 50).describe() == "train.max_steps: null in the run, 50 now"
