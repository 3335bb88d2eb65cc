"""A corpus of hostile and broken inputs: each one is exit code 2, one message naming the file or the
field, no traceback, and nothing written or changed anywhere.

Every case runs ``nnframe train`` (the command that would write a run
directory) in a fresh temporary directory. The whole directory — the inputs
and the runs directory — is snapshotted before and after: after a bad input
the runs directory must not exist and no input may have changed.

Cases whose danger is the process itself (code execution through YAML tags,
alias bombs, a FIFO that would block a read, deep nesting that would overflow
the stack, a runs directory under a file) go through the installed console
script in a subprocess; cases about values go through typer's CliRunner, which
runs the same code path faster.

An unreadable file: the tests run as root, for whom ``chmod 000`` does not stop
a read, so unreadable is represented honestly by paths that cannot be read as
a file (a directory and a FIFO). The permission-denied branch itself is tested
in test_config_loader.py by making ``open`` raise ``PermissionError``.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from fixtures.console import NNFRAME
from nnframe.cli import app

GOOD: dict[str, Any] = {
    "name": "hostile",
    "seed": 1,
    "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
    "model": [{"type": "affine", "out": 5}, {"type": "sigmoid"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 1.0},
    "train": {"epochs": 1, "batch_size": 10},
}
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


@dataclass
class Case:
    """One bad input: ``make(tmp)`` writes it and returns the command-line arguments after ``train``.

    ``names`` are substrings the message must contain (the file, the field);
    ``console`` runs it through the installed script in a subprocess.
    """

    make: Callable[[Path], list[str]]
    names: list[str]
    console: bool = False


def config_text(tmp: Path, text: str | bytes) -> list[str]:
    path = tmp / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return [str(path)]


def config(tmp: Path, **sections: Any) -> list[str]:
    return config_text(tmp, yaml.safe_dump({**GOOD, **sections}, sort_keys=False))


def npz(tmp: Path, x: Any, y: Any, **sections: Any) -> list[str]:
    np.savez(tmp / "data.npz", x=x, y=y)
    return config(tmp, data={"type": "npz", "path": "data.npz"}, **sections)


def split_npz(tmp: Path, x: Any, y: Any) -> list[str]:
    """Half the examples split off for validation: a message names a row as it is in the file, not after the split."""
    np.savez(tmp / "data.npz", x=x, y=y)
    return config(tmp, data={"type": "npz", "path": "data.npz", "val_fraction": 0.5})


def csv(tmp: Path, text: str) -> list[str]:
    (tmp / "data.csv").write_text(text, encoding="utf-8")
    return config(tmp, data={"type": "csv", "path": "data.csv"}, train={"epochs": 1, "batch_size": 2})


def huge_npz(tmp: Path) -> list[str]:
    """An archive whose ``x.npy`` header claims shape (10**14, 4) over 64 bytes of data.

    More than any process can address (x86-64: 128 TiB), so no machine allocates it, whatever its
    overcommit setting; the same holds for the 512 TiB layer below.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**14, 4)})
    labels = io.BytesIO()
    np.save(labels, Y)
    with zipfile.ZipFile(tmp / "data.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(64))
        archive.writestr("y.npy", labels.getvalue())
    return config(tmp, data={"type": "npz", "path": "data.npz"})


def fifo(tmp: Path) -> list[str]:
    os.mkfifo(tmp / "config.yaml")
    return [str(tmp / "config.yaml")]


def runs_under_a_file(tmp: Path) -> list[str]:
    (tmp / "runs").write_text("not a directory\n", encoding="utf-8")
    return [*config(tmp), "--runs-dir", str(tmp / "runs" / "inner")]


X = np.random.default_rng(0).standard_normal((30, 2))
Y = np.arange(30) % 3


def with_value(array: np.ndarray, index: int, value: Any) -> np.ndarray:
    changed = array.astype(type(value) if isinstance(value, float) else array.dtype)
    changed.flat[index] = value
    return changed


CASES: dict[str, Case] = {
    # hostile YAML and files: through the real console script
    "python object tag": Case(lambda t: config_text(
        t, f"name: x\nseed: !!python/object/apply:os.system ['touch {t / 'pwned'}']\n"),
        ["config.yaml", "python/object/apply:os.system", "not allowed"], console=True),
    "alias bomb": Case(lambda t: config_text(t, BILLION_LAUGHS), ["config.yaml", "alias bomb"], console=True),
    "root is a list": Case(lambda t: config_text(t, "- name: x\n- seed: 1\n"), ["config.yaml", "found a list"],
                           console=True),
    "root is a scalar": Case(lambda t: config_text(t, "3.5\n"), ["config.yaml", "found a number"], console=True),
    "binary garbage": Case(lambda t: config_text(t, bytes(range(256)) * 4), ["config.yaml", "binary data"],
                           console=True),
    "missing file": Case(lambda t: [str(t / "nope.yaml")], ["nope.yaml", "no such file"], console=True),
    "a directory, not a file": Case(lambda t: [str(t)], ["is a directory"], console=True),
    "a FIFO, which would block a read": Case(fifo, ["config.yaml", "not a regular file"], console=True),
    "empty file": Case(lambda t: config_text(t, ""), ["config.yaml", "empty"], console=True),
    "nesting deeper than the stack": Case(lambda t: config_text(t, "a: " + "[" * 20000 + "]" * 20000),
                                          ["config.yaml", "levels deep"], console=True),
    "runs directory under a regular file": Case(runs_under_a_file, ["runs", "Not a directory"], console=True),
    # YAML problems and wrong values: through CliRunner
    "python tag in an override": Case(lambda t: [*config(t), "seed=!!python/object/apply:os.getpid []"],
                                      ["override 'seed=", "not allowed"]),
    "recursive alias": Case(lambda t: config_text(t, "name: &n [*n]\n"), ["config.yaml", "refers to itself"]),
    "duplicate key": Case(lambda t: config_text(t, yaml.safe_dump(GOOD) + "seed: 2\n"),
                          ["config.yaml", "duplicate key 'seed'"]),
    "latin-1 text": Case(lambda t: config_text(t, "name: caf\xe9\n".encode("latin-1")), ["config.yaml", "UTF-8"]),
    "syntax error": Case(lambda t: config_text(t, "name: [unclosed\n"), ["config.yaml", "not valid YAML", "line"]),
    "string where an int goes": Case(lambda t: config(t, model=[{"type": "affine", "out": "ten"}]),
                                     ["config.yaml", "model[0].out", "found 'ten'"]),
    "list where a section goes": Case(lambda t: config(t, train=[1, 2]), ["config.yaml", "field train",
                                                                          "expected a mapping"]),
    "val_fraction out of range": Case(lambda t: config(t, data={**GOOD["data"], "val_fraction": 1.5}),
                                      ["config.yaml", "data.val_fraction"]),
    "infinite clip_grad_norm": Case(lambda t: config(t, train={"epochs": 1, "clip_grad_norm": float("inf")}),
                                    ["config.yaml", "train.clip_grad_norm", "finite"]),
    "warm-up longer than the run": Case(lambda t: config(t, optimizer={"type": "sgd", "lr": 0.1, "schedule": {
        "type": "cosine", "warmup_steps": 100}}), ["config.yaml", "optimizer.schedule", "warmup_steps (100)"]),
    "huge epochs": Case(lambda t: config(t, train={"epochs": 10**30}), ["config.yaml", "train.epochs"]),
    "seed beyond 64 bits": Case(lambda t: config(t, seed=2**64), ["config.yaml", "field seed"]),
    "infinite learning rate": Case(lambda t: config(t, optimizer={"type": "sgd", "lr": float("inf")}),
                                   ["config.yaml", "optimizer.lr", "finite"]),
    "infinite init scale": Case(lambda t: config(t, model=[{"type": "affine", "out": 3, "scale": float("inf")}]),
                                ["config.yaml", "model[0].scale", "finite"]),
    "a boolean for a layer width": Case(lambda t: config(t, model=[{"type": "affine", "out": True}]),
                                        ["config.yaml", "model[0].out", "expected an integer, found a boolean"]),
    "a boolean for a learning rate": Case(lambda t: config(t, optimizer={"type": "sgd", "lr": True}),
                                          ["config.yaml", "optimizer.lr", "expected a number, found a boolean"]),
    "misspelt choice": Case(lambda t: config(t, train={"epochs": 1, "dtype": "flaot64"}),
                            ["config.yaml", "train.dtype", "did you mean 'float64'?"]),
    "misspelt best metric": Case(lambda t: config(t, checkpoint={"best_metric": "val/acc"}),
                                 ["config.yaml", "checkpoint.best_metric", "did you mean 'val/accuracy'?"]),
    "a layer too large for memory": Case(lambda t: config(t, model=[{"type": "affine", "out": 2**20},
                                                                     {"type": "affine", "out": 2**27}]),
                                         ["config.yaml", "model[1]", "does not fit in memory"]),  # W: 512 TiB
    "a layer wider than any count": Case(lambda t: config(t, model=[{"type": "affine", "out": 10**12}]),
                                         ["config.yaml", "model[0].out", "less than or equal to 2147483647"]),
    "a dataset larger than any count": Case(lambda t: config(t, data={**GOOD["data"], "points_per_class": 10**13}),
                                            ["config.yaml", "data.points_per_class", "less than or equal"]),
    "spiral sizes whose product is larger than any count": Case(
        lambda t: config(t, data={**GOOD["data"], "points_per_class": 2**30, "classes": 4}),
        ["config.yaml", "field data", "points_per_class times classes"]),
    "a spiral noise whose angles overflow": Case(lambda t: config(t, data={**GOOD["data"], "noise": 1e308}),
                                                 ["config.yaml", "data.noise", "less than or equal"]),
    "a schedule longer than int64": Case(lambda t: config(t, optimizer={"type": "sgd", "lr": 0.1, "schedule": {
        "type": "step", "step_size": 10**23}}), ["config.yaml", "optimizer.schedule.step_size"]),
    "an init scale that overflows": Case(lambda t: config(t, model=[{"type": "affine", "out": 3, "scale": 1e300}]),
                                         ["config.yaml", "model[0]", "parameter W not finite in float32"]),
    "an override that breaks a check after validation": Case(lambda t: [*config(t), "train.batch_size=1000"],
                                                              ["override 'train.batch_size=1000'",
                                                               "field train.batch_size", "30 training examples"]),
    # data files
    "npz with NaN": Case(lambda t: npz(t, with_value(X, 7, float("nan")), Y), ["data.npz", "NaN", "x[3, 1]"]),
    "npz with inf": Case(lambda t: npz(t, with_value(X, 0, float("inf")), Y), ["data.npz", "x[0, 0] = inf"]),
    "npz x and y of different lengths": Case(lambda t: npz(t, X, Y[:20]),
                                             ["data.npz", "x has 30 examples but y has 20"]),
    "npz label out of range": Case(lambda t: npz(t, X, with_value(Y, 4, 5)),
                                   ["data.npz", "y[4] is class 5", "outputs 3 values"]),
    "npz label out of range, split for validation": Case(
        lambda t: split_npz(t, X, with_value(with_value(Y, 21, 7), 26, 5)), ["data.npz", "y[21] is class 7"]),
    "npz value beyond float32, split for validation": Case(
        lambda t: split_npz(t, with_value(X, 2 * 13 + 1, 1e39), Y), ["data.npz", "x[13] holds a value beyond"]),
    "npz float label": Case(lambda t: npz(t, X, with_value(Y, 2, 1.5)), ["data.npz", "y[2] = 1.5"]),
    "npz string labels": Case(lambda t: npz(t, X, np.array(["cat"] * 30)), ["data.npz", "first value 'cat'"]),
    "npz smaller than one batch": Case(lambda t: npz(t, X[:6], Y[:6]),
                                       ["config.yaml", "train.batch_size", "6 training examples"]),
    "npz with pickled objects": Case(lambda t: npz(t, np.array([{"a": 1}] * 30, dtype=object), Y),
                                     ["data.npz", "Python objects"]),
    "npz that is not a zip": Case(lambda t: ((t / "data.npz").write_bytes(b"garbage" * 10),
                                             config(t, data={"type": "npz", "path": "data.npz"}))[1],
                                  ["data.npz", "not an .npz archive"]),
    "class loss on regression targets": Case(lambda t: (np.savez(t / "data.npz", x=X, y=X.sum(axis=1)), config(
        t, data={"type": "npz", "path": "data.npz", "task": "regression"}, model=[{"type": "affine", "out": 1}]))[1],
        ["config.yaml", "field loss.type", "needs class labels", "regression targets"]),
    "npz path missing": Case(lambda t: config(t, data={"type": "npz", "path": "missing.npz"}),
                             ["missing.npz", "not found"]),
    "npz path at the home of no user": Case(lambda t: config(t, data={"type": "npz", "path": "~nnframe_nouser/x.npz"}),
                                            ["config.yaml", "not found: no home directory is known for "
                                             "'~nnframe_nouser'"]),
    "npz path missing, a file of another kind close to it": Case(
        lambda t: ((t / "training_examples.yaml").write_text("", encoding="utf-8"),
                   config(t, data={"type": "npz", "path": "training_examples.npz"}))[1],
        ["training_examples.npz", "not found\n"]),
    "npz path a link to itself": Case(lambda t: ((t / "data.npz").symlink_to("data.npz"),
                                                 config(t, data={"type": "npz", "path": "data.npz"}))[1],
                                      ["data.npz", "a link that leads nowhere"]),
    "npz whose header claims 2.8 PiB": Case(huge_npz, ["data.npz", "array 'x' does not fit in memory", "corrupt"]),
    "csv with nan": Case(lambda t: csv(t, "a,b,label\n1,2,0\n3,nan,1\n4,5,2\n"),
                         ["data.csv", "line 3, column 'b': 'nan' is a missing"]),
    "csv float label": Case(lambda t: csv(t, "a,b,label\n1,2,0\n3,4,1.5\n4,5,2\n"), ["data.csv", "y[1] (line 3) = 1.5"]),
    "csv label too large for any class": Case(lambda t: csv(t, "a,b,label\n1,2,0\n3,4,1e30\n4,5,2\n"),
                                              ["data.csv", "y[1] (line 3) = 1e+30 is not a class index"]),
    "csv string label": Case(lambda t: csv(t, "a,b,label\n1,2,0\n3,4,cat\n"), ["data.csv", "line 3", "'cat'"]),
    "csv short row": Case(lambda t: csv(t, "a,b,label\n1,2,0\n3,4\n"), ["data.csv", "line 3", "2 cells"]),
}


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root`` with its kind, and for regular files their size, mtime and hash."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            found[str(path)] = ("file", info.st_size, info.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            found[str(path)] = (stat.S_IFMT(info.st_mode), info.st_mtime_ns)
    return found


def run(args: list[str], console: bool, cwd: Path) -> tuple[int, str]:
    if console:
        done = subprocess.run([NNFRAME, "train", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
        return done.returncode, done.stdout + done.stderr
    result = CliRunner().invoke(app, ["train", *args])
    return result.exit_code, result.output


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert sum(case.console for case in CASES.values()) >= 10


@pytest.mark.parametrize("name", CASES)
def test_a_bad_input_is_exit_2_with_one_message_and_no_files(tmp_path: Path, name: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    args = case.make(work)
    if "--runs-dir" not in args:
        args = [*args, "--runs-dir", str(work / "runs")]
    before = snapshot(tmp_path)
    monkeypatch.chdir(work)  # a stray relative write would land inside the snapshot
    code, output = run([*args, "--quiet"], case.console, work)
    assert code == 2, output
    assert output.startswith("error: ") and output.count("error: ") == 1, output
    for word in case.names:
        assert word in output, output
    assert "Traceback" not in output
    assert snapshot(tmp_path) == before
    assert not (work / "runs").is_dir()


def test_an_integer_beyond_pythons_digit_limit_is_named_by_its_length_not_echoed(tmp_path: Path) -> None:
    digits = "9" * 5000
    for write in (lambda: config_text(tmp_path, f"name: x\nseed: {digits}\n"),
                  lambda: [*config(tmp_path), f"seed={digits}"]):
        result = CliRunner().invoke(app, ["validate", *write()])
        assert result.exit_code == 2
        assert "an integer of 5000 digits is larger than any setting takes" in result.output
        assert len(result.output) < 400, result.output
