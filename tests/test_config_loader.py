"""Reading YAML safely, applying Hydra-style overrides, validating, and printing the resolved config."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nnframe import Params, hookimpl
from nnframe.bounded_yaml import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_EXPANDED_NODES, read_yaml
from nnframe.builtin import datasets, losses, nodes, optimizers, schedules
from nnframe.components import node
from nnframe.config_loader import apply_override, load_experiment, parse_override, shown
from nnframe.errors import ConfigError
from nnframe.plugins import get_plugin_manager

SPIRAL_YAML = """\
name: spiral
seed: 1984
data: {type: spiral, points_per_class: 10, classes: 3}
model:
  - {type: affine, out: 10}
  - {type: sigmoid}
  - {type: affine, out: 3}
loss: {type: softmax_cross_entropy}
optimizer: {type: sgd, lr: 1.0}
train: {epochs: 3, batch_size: 30}
"""
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


@pytest.fixture(scope="module")
def plugins() -> Any:
    return get_plugin_manager(autoload=False, plugins=[
        ("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
        ("datasets", datasets)])


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_read_yaml_returns_the_mapping(tmp_path: Path) -> None:
    data = read_yaml(write(tmp_path, SPIRAL_YAML))
    assert data["model"][0] == {"type": "affine", "out": 10}


@pytest.mark.parametrize(("text", "value"), [
    ("017", 17), ("-017", -17), ("10_000", 10000), ("0o17", 15), ("0x1F", 31),  # YAML 1.1: 15, -15, ...
    ("1:30", "1:30"), ("yes", "yes"), ("off", "off"),  # YAML 1.1: 90, True, False
    ("1e-3", 0.001), (".5", 0.5), ("true", True), ("FALSE", False), ("'017'", "017"),
])
def test_plain_scalars_are_read_as_yaml_1_2_reads_them(tmp_path: Path, text: str, value: Any) -> None:
    data = read_yaml(write(tmp_path, f"seed: {text}\n"))
    assert data["seed"] == value and type(data["seed"]) is type(value)


@pytest.mark.parametrize("value", ["09", "1e3", "0o17", "1.0e3", "yes", "1:30", "0x1F", "10_000", 1e-5, 17, True])
def test_what_nnframe_writes_reads_back_the_same(tmp_path: Path, value: Any) -> None:
    from nnframe.yaml_scalars import dump_yaml

    assert read_yaml(write(tmp_path, dump_yaml({"v": value})))["v"] == value
    assert yaml.safe_load(dump_yaml({"v": value}))["v"] == value


def test_a_seed_with_a_leading_zero_is_the_number_written(tmp_path: Path, plugins: Any) -> None:
    assert load_experiment(write(tmp_path, SPIRAL_YAML), ["seed=017"], plugins).resolved["seed"] == 17
    with pytest.raises(ConfigError, match=r"field seed: input should be a valid integer"):
        load_experiment(write(tmp_path, SPIRAL_YAML), ["seed=1:30"], plugins)
    with pytest.raises(ConfigError, match=r"not valid YAML: '0b1' is not an integer"):
        read_yaml(write(tmp_path, "seed: !!int 0b1\n"))


def test_merge_keys_are_plain_yaml_and_allowed(tmp_path: Path) -> None:
    text = "base: &b {type: affine, out: 4}\nother:\n  <<: *b\n  out: 5\n"
    assert read_yaml(write(tmp_path, text))["other"] == {"type": "affine", "out": 5}


@pytest.mark.parametrize("text, words", [
    ("!!python/object/apply:os.system ['echo hacked']\n", ["tag", "python/object/apply:os.system", "not allowed"]),
    ("name: !!python/name:os.system\n", ["python/name:os.system", "not allowed"]),
    (BILLION_LAUGHS, [f"more than {MAX_EXPANDED_NODES} values", "alias bomb"]),
    ("a: &a [*a]\n", ["refers to itself"]),
    ("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", [f"more than {MAX_DEPTH} levels"]),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", [f"more than {MAX_DEPTH} levels"]),
    ("name: a\nseed: 1\nname: b\n", ["duplicate key 'name' at line 3", "first at line 1"]),
    ("- 1\n- 2\n", ["top level must be a mapping", "found a list"]),
    ("42\n", ["top level must be a mapping", "found a number (42)"]),
    ("just words\n", ["found a string ('just words')"]),
    ("", ["the file is empty"]),
    ("# only a comment\n", ["the file is empty"]),
    ("a: b: c\n", ["not valid YAML", "line 1, column 5"]),
    ("a: [1, 2\n", ["not valid YAML"]),
    ("a: 1\n---\nb: 2\n", ["not valid YAML", "single document"]),
    (b"\x00\x01binary\xff", ["binary data"]),
    (b"name: caf\xe9\n", ["not UTF-8", "byte 9"]),
    ("name: spiral\n\x0ctrain: {epochs: 1}\n", ["not valid YAML: the control character U+000C at line 2, column 1"]),
    ("name: spiral\nseed: 1\x1b\n", ["the control character U+001B at line 2, column 8 is not allowed"]),
    ("name: a\u0080b\n", ["the control character U+0080 at line 1, column 8"]),
    ("name: a\ufffe\n", ["the character U+FFFE at line 1, column 8 is not allowed"]),
    ("name: a\rseed: 1\r\ntrain: {\x01}\r\n", ["the control character U+0001 at line 3, column 9"]),  # CR, CRLF
])
def test_hostile_or_broken_yaml_is_one_config_error_naming_the_file(tmp_path: Path, text: str | bytes,
                                                                    words: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for word in words:
        assert word in message


@pytest.mark.parametrize("text, words", [
    ("data: {type: spiral, noise: 0.2\nmodel: []\n",
     ["the '{' at line 1, column 7 is not closed", "but got ':' at line 2, column 6"]),
    ("model: [{type: affine}, {type: relu}\nloss: {type: mse}\n", ["the '[' at line 1, column 8 is not closed"]),
    ("a: [1, 2\n", ["the '[' at line 1, column 4 is not closed", "at line 2, column 1"]),
    ('name: "spiral\nseed: 1\n', ["the quote at line 1, column 7 is not closed"]),
    ("data:\n\ttype: spiral\n", ["line 2, column 1", "YAML indents with spaces, not tabs"]),
])
def test_a_yaml_slip_is_placed_where_it_can_be_fixed(tmp_path: Path, text: str, words: list[str]) -> None:
    message = str(pytest.raises(ConfigError, read_yaml, write(tmp_path, text)).value)
    for word in words:
        assert word in message


@pytest.mark.parametrize("text, found", [
    ("train: {epochs: 2 batch_size: 3}\n", "expected ',' or '}', but got ':' at line 1"),
    ("model: [\n  {type: affine, out: 2}\n  {type: relu}\n]\n", "expected ',' or ']', but got '{' at line 3"),
    ("data: {type: spiral,\n  classes: 3\n  noise: 0.2}\n", "expected ',' or '}', but got ':' at line 3"),
])
def test_a_missing_comma_within_closed_brackets_is_not_called_unclosed(tmp_path: Path, text: str, found: str) -> None:
    message = str(pytest.raises(ConfigError, read_yaml, write(tmp_path, text)).value)
    assert "not closed" not in message
    assert found in message


def test_a_python_tag_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"a: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError):
        read_yaml(path)
    assert not marker.exists()


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "a: " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        read_yaml(path)


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "missing.yaml", ["no such file"]),
    (lambda tmp: tmp, ["is a directory"]),
    (lambda tmp: (os.mkfifo(tmp / "fifo"), tmp / "fifo")[1], ["not a regular file"]),
    (lambda tmp: Path(os.devnull), ["not a regular file"]),
])
def test_paths_that_are_not_readable_config_files(tmp_path: Path, make: Any, words: list[str]) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("given, told", [
    ("spirl.yaml", "no such file (did you mean 'spiral.yaml'?)"),
    ("Spiral.yml", "no such file (did you mean 'spiral.yaml'?)"),
    ("optimizer.lr=0.1", "no such file; the config file comes first, then the overrides: CONFIG path=value ..."),
    ("zzz.yaml", "no such file"),
    ("gone/spiral.yaml", "no such file"),
    ("spiral2.yaml", "no such file: it is a link to 'elsewhere/spiral.yaml', which leads nowhere"),
])
def test_a_config_that_does_not_exist_is_told_what_was_likely_meant(tmp_path: Path, given: str, told: str) -> None:
    write(tmp_path, SPIRAL_YAML, "spiral.yaml")
    (tmp_path / "spiral.csv").write_text("", encoding="utf-8")  # only configs are suggested
    (tmp_path / "spiral2.yaml").symlink_to("elsewhere/spiral.yaml")  # not suggested for itself, nor for spirl.yaml
    with pytest.raises(ConfigError) as caught:
        read_yaml(tmp_path / given)
    assert str(caught.value) == f"{tmp_path / given}: {told}"


def test_permission_denied_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tests run as root, for whom chmod 000 does not stop a read; make open() fail as it would for a user
    path = write(tmp_path, SPIRAL_YAML)

    def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ConfigError, match="cannot be read \\(permission denied\\)"):
        read_yaml(path)


@pytest.mark.parametrize("text, path, value", [
    ("optimizer.lr=0.1", ["optimizer", "lr"], 0.1),
    ("model.0.out=20", ["model", 0, "out"], 20),
    ("train.epochs=3", ["train", "epochs"], 3),
    ("train.max_steps=null", ["train", "max_steps"], None),
    ("log.grad_norms=false", ["log", "grad_norms"], False),
    ("name=run 2", ["name"], "run 2"),
    ("model.1={type: relu}", ["model", 1], {"type": "relu"}),
    ("data.path=a=b.npz", ["data", "path"], "a=b.npz"),
    ("train.dtype=", ["train", "dtype"], ""),
])
def test_parse_override_reads_the_value_as_yaml(text: str, path: list[Any], value: Any) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text, words", [
    ("optimizer.lr", ["must look like path=value"]),
    ("=3", ["empty path"]),
    ("optimizer..lr=3", ["empty part"]),
    ("train.epochs=[1", ["not valid YAML", "the '[' at line 1, column 1 is not closed"]),
    ("train.epochs=!!python/object/apply:os.system [ls]", ["not allowed"]),
    ("optimizer.lr=\x01", ["not valid YAML: the control character U+0001 at line 1, column 1 is not allowed"]),
    ("name=caf\udce9", ["not valid YAML: the byte 0xE9 at line 1, column 4 is not UTF-8 text"]),
])
def test_malformed_overrides_are_named(text: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_override(text)
    assert f"override {text!r}" in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def spiral_data() -> dict[str, Any]:
    return yaml.safe_load(SPIRAL_YAML)


def test_apply_override_sets_values_and_creates_missing_sections() -> None:
    data = spiral_data()
    apply_override(data, "model.0.out=20")
    apply_override(data, "checkpoint.every=5")
    apply_override(data, "model.0.weights.3=2.0")  # a plugin's mapping keyed by numbers, which the file leaves out
    assert data["model"][0]["out"] == 20
    assert data["checkpoint"] == {"every": 5}
    assert data["model"][0]["weights"] == {"3": 2.0}


def test_a_field_of_the_default_schedule_can_be_set_without_naming_its_type() -> None:
    data = spiral_data()
    apply_override(data, "optimizer.schedule.warmup_steps=100")
    assert data["optimizer"]["schedule"] == {"type": "constant", "warmup_steps": 100}
    data = spiral_data()
    apply_override(data, "optimizer.schedule.type=cosine")
    apply_override(data, "optimizer.schedule.min_lr=0.01")
    assert data["optimizer"]["schedule"] == {"type": "cosine", "min_lr": 0.01}


@pytest.mark.parametrize("text, words", [
    ("model.5.out=3", ["model is a list of 3 entries (indices 0..2)", "5 is not an index"]),
    ("model.3=3", ["3 is not an index"]),
    ("model.x.out=3", ["'x' is not an index"]),
    ("model.².out=3", ["'²' is not an index"]),  # a digit to str.isdigit, not to int()
    ("model.٢.out=3", ["'٢' is not an index"]),  # a digit to int(), not to YAML
    ("model.1234567890123456789.out=3", ["an index of 19 digits is beyond any list"]),
    ("name.first=3", ["name is a value ('spiral'), not a section"]),
    ("model.0.out.x=1", ["model.0.out is a value (10)"]),
    ("callbacks.0.type=early_stopping", ["callbacks is not in the config, so it has no entry 0; give it whole, as "
                                         "'callbacks=[{...}]'"]),
])
def test_override_paths_that_cannot_exist_are_named(text: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        apply_override(spiral_data(), text)
    assert f"override {text!r}" in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_an_entry_of_a_list_left_empty_in_the_file_asks_for_the_whole_list() -> None:
    with pytest.raises(ConfigError, match=r"model is not in the config, so it has no entry 0; give it whole, as "
                                          r"'model=\[\{\.\.\.\}\]'"):
        apply_override({**spiral_data(), "model": None}, "model.0={type: affine, out: 3}")  # `model:` and no more


@pytest.mark.parametrize("overrides, origin, path", [
    (["optimizer.lrr=0.1"], "override 'optimizer.lrr=0.1'", "optimizer.lrr"),
    (["foo.bar=1"], "override 'foo.bar=1'", "foo"),
    (["model.0.out=abc"], "override 'model.0.out=abc'", "model[0].out"),
    (["train.epochs=3", "train.epochs=-1"], "override 'train.epochs=-1'", "train.epochs"),
    (["model.1.type=afine"], "override 'model.1.type=afine'", "model[1].type"),
    (["optimizer.lr=0.5", "data.classes=1"], "override 'data.classes=1'", "data.classes"),
    (["train.init_from.strict=false"], "override 'train.init_from.strict=false'", "train.init_from.run"),
])
def test_a_bad_override_is_named_in_the_error(tmp_path: Path, plugins: Any, overrides: list[str], origin: str,
                                              path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, SPIRAL_YAML), overrides, plugins)
    assert str(caught.value).startswith(f"{origin}: field {path}: ")
    assert caught.value.path == path


def test_an_entry_of_a_list_the_file_leaves_out_is_blamed_on_its_override_with_the_whole_list_form(
        tmp_path: Path, plugins: Any) -> None:
    (tmp_path / "d.csv").write_text("id,a,label\n1,2,0\n2,3,1\n", encoding="utf-8")
    text = SPIRAL_YAML.replace("data: {type: spiral, points_per_class: 10, classes: 3}",
                               "data: {type: csv, path: d.csv}")
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, text), ["data.drop.0=id"], plugins)
    assert str(caught.value).startswith("override 'data.drop.0=id': field data.drop: expected a list; an override "
                                        "gives a list the config leaves out whole, as data.drop=[...]")
    for override, path in [("train.clip_grad_norm.x=1", "train.clip_grad_norm"),
                           ("optimizer.schedule.warmup_steps.x=1", "optimizer.schedule.warmup_steps")]:
        with pytest.raises(ConfigError) as caught:  # a mapping where a number belongs
            load_experiment(write(tmp_path, SPIRAL_YAML), [override], plugins)
        assert str(caught.value).startswith(f"override '{override}': field {path}: input should be a valid ")
    no_length = write(tmp_path, SPIRAL_YAML.replace("epochs: 3, ", ""))
    with pytest.raises(ConfigError) as caught:  # a section the override made inside the file's wrong one
        load_experiment(no_length, ["train.init_from.run=/tmp/x"], plugins)
    assert str(caught.value).startswith(f"{no_length}: field train: expected train.epochs or train.max_steps")
    model = SPIRAL_YAML.replace("  - {type: sigmoid}\n", "  - {type: add}\n")  # a node whose inputs are a list
    with pytest.raises(ConfigError, match=r"as model\.1\.inputs=\[\.\.\.\]; found \{'0': 'affine1'\}"):
        load_experiment(write(tmp_path, model), ["model.1.inputs.0=affine1"], plugins)


def test_a_rule_across_a_sections_fields_names_the_overrides_inside_it(tmp_path: Path, plugins: Any) -> None:
    path = write(tmp_path, SPIRAL_YAML)
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, ["train.epochs=null", "train.shuffle=false", "optimizer.lr=0.5"], plugins)
    assert str(caught.value).startswith(f"{path} (with override 'train.epochs=null'): field train: expected "
                                        "train.epochs or train.max_steps")


def test_why_a_type_was_left_out_goes_to_its_own_problem_when_another_runs_over_two_lines() -> None:
    from types import SimpleNamespace

    from nnframe.config_loader import _why_unknown
    from nnframe.errors import MISSING_PLUGIN
    from nnframe.plugins import BrokenPlugin

    node_line = f"c.yaml: field model[1].type: unknown type 'foo'; available: affine{MISSING_PLUGIN}"
    loss_line = f"c.yaml: field loss.type: unknown type 'lfoo'; available: mse{MISSING_PLUGIN}"
    message = "\n".join(["c.yaml: field model[0].width: width must be at least 1;\n  e.g. width: 4", node_line,
                         loss_line])
    plugins = SimpleNamespace(left_out={("node", "foo"): "NODE LEFT OUT", ("loss", "lfoo"): "LOSS LEFT OUT"},
                              broken=[BrokenPlugin("p", "d", "1", "e")])
    told = _why_unknown(message, [(node_line, "model[1].type", "foo"), (loss_line, "loss.type", "lfoo")], plugins)
    assert told.split("\n")[2:] == [node_line.replace(MISSING_PLUGIN, "; NODE LEFT OUT"),
                                    loss_line.replace(MISSING_PLUGIN, "; LOSS LEFT OUT")]


def test_a_callbacks_name_is_asked_for_in_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, SPIRAL_YAML), ["callbacks=[{type: early_stopping, name: stop-early}]"],
                        get_plugin_manager())
    assert str(caught.value).endswith("field callbacks[0].name: expected a name of ASCII letters, digits and '_' "
                                      "that starts with a letter; found 'stop-early'")


def test_an_error_in_the_file_names_the_file_even_with_overrides(tmp_path: Path, plugins: Any) -> None:
    path = write(tmp_path, SPIRAL_YAML.replace("lr: 1.0", "lr: fast"))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, ["train.epochs=5"], plugins)
    assert str(caught.value).startswith(f"{path}: field optimizer.lr: ")
    assert (caught.value.file, caught.value.path) == (str(path), "optimizer.lr")


def test_graph_problems_are_config_errors_with_the_field_path(tmp_path: Path, plugins: Any) -> None:
    text = SPIRAL_YAML.replace("""model:
  - {type: affine, out: 10}
  - {type: sigmoid}
  - {type: affine, out: 3}""", """model:
  inputs: [x]
  nodes:
    - {name: h, type: affine, out: 10, inputs: [x]}
    - {name: y, type: affine, out: 3, inputs: [hh]}
  output: y""")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, [], plugins)
    assert str(caught.value) == (f"{path}: field model.nodes[1].inputs: node 'y': unknown input 'hh'; "
                                 "available: h, x (did you mean 'h'?)")
    fixed = ["model.nodes.1.inputs=[h]"]
    assert load_experiment(path, fixed, plugins).experiment.model.nodes[1].inputs == ["h"]
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, ["model.nodes.1.inputs=[y]"], plugins)
    assert str(caught.value) == ("override 'model.nodes.1.inputs=[y]': field model.nodes[1].inputs: node 'y' reads "
                                 "its own output; a node cannot depend on its own output")
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, [*fixed, "model.nodes.0.name=y"], plugins)
    assert str(caught.value).startswith(f"{path} (with overrides 'model.nodes.1.inputs=[h]', 'model.nodes.0.name=y'): "
                                        "field model.nodes[1].name: duplicate node name 'y'")


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.0.out=true"], "override 'model.0.out=true': field model[0].out: expected an integer, found a boolean (true)"),
    (["model={inputs: [x], nodes: [{name: h, type: affine, out: true, inputs: [x]}], output: h}"],
     "field model.nodes[0].out: expected an integer, found a boolean (true)"),
    (["optimizer.schedule={type: step, step_size: true}"],
     "field optimizer.schedule.step_size: expected an integer, found a boolean (true)"),
    (["optimizer.weight_decay=true"], "field optimizer.weight_decay: expected a number, found a boolean (true)"),
])
def test_a_boolean_is_not_a_number_anywhere(tmp_path: Path, plugins: Any, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_experiment(write(tmp_path, SPIRAL_YAML), overrides, plugins)
    assert load_experiment(write(tmp_path, SPIRAL_YAML), ["log.grad_norms=false"], plugins)


def test_overrides_are_validated_like_the_file(tmp_path: Path, plugins: Any) -> None:
    loaded = load_experiment(write(tmp_path, SPIRAL_YAML), ["optimizer.lr=0.1", "model.0.out=20",
                                                            "optimizer.type=momentum"], plugins)
    assert loaded.experiment.optimizer.lr == 0.1
    assert loaded.experiment.optimizer.momentum == 0.9
    assert loaded.experiment.model[0].out == 20
    assert loaded.overrides == ["optimizer.lr=0.1", "model.0.out=20", "optimizer.type=momentum"]


@pytest.mark.parametrize("model", [
    "model:\n  - {type: affine, out: 10}\n  - {type: sigmoid}\n  - {type: affine, out: 3}\n",
    "model:\n  inputs: [x]\n  nodes:\n    - {name: h, type: affine, out: 10, inputs: [x]}\n"
    "    - {name: r, type: repeat, n: 2, axis: 1, inputs: [h]}\n    - {name: s, type: sum, axis: 1, inputs: [r]}\n"
    "    - {name: y, type: affine, out: 3, inputs: [s]}\n  output: y\n",
])
def test_the_resolved_config_round_trips(tmp_path: Path, plugins: Any, model: str) -> None:
    text = SPIRAL_YAML.split("model:")[0] + model + SPIRAL_YAML.split("  - {type: affine, out: 3}\n")[1]
    loaded = load_experiment(write(tmp_path, text), ["optimizer.lr=0.25"], plugins)
    printed = loaded.to_yaml()
    again = load_experiment(write(tmp_path, printed, "resolved.yaml"), [], plugins)
    assert again.resolved == loaded.resolved
    assert again.to_yaml() == printed
    resolved = yaml.safe_load(printed)
    assert resolved["optimizer"]["lr"] == 0.25
    assert resolved["train"]["dtype"] == "float32"
    assert list(resolved["data"])[0] == "type"


class _UnsetByNone(Params):
    """A plugin author's "unset": a ``None`` default under a type that refuses ``None``."""

    factor: float = None
    shift: float | None = None


class _UnsetByNonePlugin:
    @hookimpl
    def nnframe_register_nodes(self):
        return [node("unset_by_none", _UnsetByNone, lambda params, ctx: None)]


@pytest.mark.parametrize("model", [
    "model:\n  - {type: affine, out: 10}\n  - {type: unset_by_none}\n  - {type: affine, out: 3}\n",
    "model:\n  inputs: [x]\n  nodes:\n    - {name: h, type: affine, out: 10, inputs: [x]}\n"
    "    - {name: u, type: unset_by_none, inputs: [h]}\n    - {name: y, type: affine, out: 3, inputs: [u]}\n"
    "  output: y\n",
])
def test_a_none_default_its_type_refuses_is_left_out_of_the_resolved_config(tmp_path: Path, model: str) -> None:
    plugins = get_plugin_manager(autoload=False, plugins=[
        ("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
        ("datasets", datasets),
        ("unset", _UnsetByNonePlugin())])
    text = SPIRAL_YAML.split("model:")[0] + model + SPIRAL_YAML.split("  - {type: affine, out: 3}\n")[1]
    printed = load_experiment(write(tmp_path, text), [], plugins).to_yaml()
    resolved = yaml.safe_load(printed)
    layer = (resolved["model"] if isinstance(resolved["model"], list) else resolved["model"]["nodes"])[1]
    assert layer["type"] == "unset_by_none" and "factor" not in layer and layer["shift"] is None
    assert resolved["train"]["max_steps"] is None  # an unset field whose type takes None is still written
    again = load_experiment(write(tmp_path, printed, "resolved.yaml"), [], plugins)
    assert again.to_yaml() == printed


def test_an_override_of_an_aliased_node_changes_that_node_only(tmp_path: Path, plugins: Any) -> None:
    text = SPIRAL_YAML.replace("  - {type: affine, out: 10}\n", "  - &layer {type: affine, out: 3}\n").replace(
        "  - {type: affine, out: 3}\n", "  - *layer\n")
    loaded = load_experiment(write(tmp_path, text), ["model.2.scale=0.1"], plugins)
    assert [node.scale for node in loaded.experiment.model if node.type == "affine"] == [0.01, 0.1]


def test_an_override_of_a_sections_type_is_blamed_for_the_fields_it_left_wrong(tmp_path: Path, plugins: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, SPIRAL_YAML), ["data.type=npz"], plugins)
    path = tmp_path / "config.yaml"
    assert str(caught.value).splitlines() == [
        "override 'data.type=npz': field data.path: missing required field",
        f"override 'data.type=npz': data still holds 'points_per_class', 'classes' from {path}, which type "
        "'npz' does not take (it takes path, standardize, task, type, val_fraction); give the section whole "
        "instead, e.g. 'data={type: npz, ...}'"]


def test_keys_an_earlier_override_gave_a_retyped_section_are_blamed_on_it(tmp_path: Path, plugins: Any) -> None:
    given = "data={type: spiral, classes: 3, noise: 0.1}"
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, SPIRAL_YAML), [given, "data.type=npz", "data.path=x.npz"], plugins)
    assert str(caught.value).startswith(f"override 'data.type=npz': data still holds 'classes', 'noise' from "
                                        f"override '{given}', which type 'npz' does not take")


@pytest.mark.parametrize("overrides, keys, origin", [
    (["data.type=npz", "data.type=npz"], "'points_per_class', 'classes'", None),
    (["data.type=npz", "data.type='npz'"], "'points_per_class', 'classes'", None),
    (["data.type=csv", "data={type: spiral, classes: 3, noise: 0.1}", "data.type=npz"], "'classes', 'noise'",
     "override 'data={type: spiral, classes: 3, noise: 0.1}'"),
])
def test_a_retyping_override_is_found_given_twice_or_after_its_section_was_given_whole(
        tmp_path: Path, plugins: Any, overrides: list[str], keys: str, origin: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, SPIRAL_YAML), [*overrides, "data.path=x.npz"], plugins)
    assert str(caught.value).splitlines() == [
        f"override {shown(overrides[-1])}: data still holds {keys} from {origin or tmp_path / 'config.yaml'}, which "
        "type 'npz' does not take (it takes path, standardize, task, type, val_fraction); give the section whole "
        "instead, e.g. 'data={type: npz, ...}'"]


def test_a_type_override_after_its_section_was_given_whole_with_that_type_changes_nothing(
        tmp_path: Path, plugins: Any) -> None:
    overrides = ["data.type=npz", "data={type: npz, path: x.npz, classes: 3}", "data.type=npz"]
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, SPIRAL_YAML), overrides, plugins)
    assert "still holds" not in str(caught.value) and "unknown key 'classes'" in str(caught.value)


def test_an_override_that_sets_the_type_a_section_has_leaves_a_typo_of_the_file_its_close_match(
        tmp_path: Path, plugins: Any) -> None:
    text = SPIRAL_YAML.replace("{type: sgd, lr: 1.0}", "{type: sgd, lrr: 1.0}")
    assert text != SPIRAL_YAML
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, text), ["optimizer.type=sgd"], plugins)
    assert "unknown key 'lrr'" in str(caught.value) and "(did you mean 'lr'?)" in str(caught.value)
    assert "still holds" not in str(caught.value)


def test_keys_a_retyped_node_keeps_from_the_file_are_one_line_without_a_misleading_close_match(
        tmp_path: Path, plugins: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        text = SPIRAL_YAML.replace("{type: affine, out: 10}", "{type: affine, out: 10, init: he}")
        load_experiment(write(tmp_path, text), ["model.0.type=sigmoid", "model.0.outt=3"], plugins)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and "did you mean" not in lines[0]
    assert lines[0].startswith("override 'model.0.type=sigmoid': model[0] still holds 'out', 'init' from ")
    assert "which type 'sigmoid' does not take" in lines[0]
    assert lines[0].endswith("give the section whole instead, e.g. 'model.0={type: sigmoid, ...}'")
    assert lines[1] == ("override 'model.0.outt=3': field model[0].outt: unknown key 'outt'; expected one of: inputs, "
                        "name, type")


@pytest.mark.parametrize(("keys", "last"), [(4, "key3"), (5, "and 2 more problems"), (30, "and 27 more problems")])
def test_a_file_with_many_problems_lists_ten_lines_at_most(tmp_path: Path, plugins: Any, keys: int, last: str) -> None:
    text = "".join(f"key{i}: {i}\n" for i in range(keys))  # each unknown, and the 6 required sections missing
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, text), [], plugins)
    lines = str(caught.value).splitlines()
    assert len(lines) == min(keys + 6, 10) and last in lines[-1]


@pytest.mark.parametrize("was, now, override, problem", [
    ("{type: sgd, lr: 1.0}", "{type: sgd, lr: -1}", "optimizer.type=adam", "field optimizer.lr:"),
    ("{type: spiral, points_per_class: 10, classes: 3}", "{type: npz}", "data.val_fraction=0.1",
     "field data.path: missing required field"),  # the override set another field of the section the file gave
])
def test_an_override_is_not_blamed_for_what_the_file_got_wrong_in_its_section(tmp_path: Path, plugins: Any, was: str,
                                                                              now: str, override: str,
                                                                              problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_experiment(write(tmp_path, SPIRAL_YAML.replace(was, now)), [override], plugins)
    assert str(caught.value).startswith(f"{tmp_path / 'config.yaml'}: {problem}")
