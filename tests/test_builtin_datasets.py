"""Tests for the built-in datasets: spiral, npz and csv, through the registry and load_dataset, and through
``nnframe validate`` for their errors and the notes on their data."""

from __future__ import annotations

import errno
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pydantic
import pytest
import yaml
from typer.testing import CliRunner

from nnframe.builtin import csv_table
from nnframe.builtin import datasets as builtin_datasets
from nnframe.cli import app
from nnframe.components import DatasetContext
from nnframe.data import Dataset, load_dataset
from nnframe.errors import DataError
from nnframe.plugins import get_plugin_manager


@pytest.fixture(scope="module")
def registry():
    return get_plugin_manager(autoload=True).datasets


def _ctx(base_dir: Path = Path("."), seed: int = 1984, dtype=np.float32) -> DatasetContext:
    return DatasetContext(base_dir, np.random.default_rng(seed), np.dtype(dtype))


def _load(registry, name: str, ctx: DatasetContext, **params) -> Dataset:
    component = registry.get(name)
    return load_dataset(component, component.params(**params), ctx)


def test_builtin_datasets_are_registered_through_the_entry_point(registry):
    assert {"spiral", "npz", "csv"} <= set(registry.names())
    for name in ("spiral", "npz", "csv"):
        assert registry.plugin_of(name).dist == "nnframe"
        assert registry.get(name).kind == "dataset"


def test_the_module_registers_through_the_hook_alone():
    plugins = get_plugin_manager(autoload=False, plugins=[("datasets", builtin_datasets)])
    assert plugins.datasets.names() == ["csv", "npz", "spiral"]
    assert plugins.broken == []


# ---------------------------------------------------------------- spiral


def _book_spiral(rng: np.random.Generator, n: int = 100, classes: int = 3, noise: float = 0.2):
    """dataset/spiral.py of the book, loop for loop, with its global RNG replaced by ``rng``."""
    x = np.zeros((n * classes, 2))
    t = np.zeros(n * classes, dtype=np.int64)
    for j in range(classes):
        for i in range(n):
            rate = i / n
            radius = 1.0 * rate
            theta = j * 4.0 + 4.0 * rate + rng.standard_normal() * noise
            x[n * j + i] = [radius * np.sin(theta), radius * np.cos(theta)]
            t[n * j + i] = j
    return x, t


def test_spiral_matches_the_books_generator(registry):
    ds = _load(registry, "spiral", _ctx(seed=3, dtype=np.float64))
    x, t = _book_spiral(np.random.default_rng(3))
    np.testing.assert_allclose(ds.x, x, rtol=0, atol=1e-12)
    assert np.array_equal(ds.y, t)


def test_spiral_shape_classes_and_balance(registry):
    ds = _load(registry, "spiral", _ctx(), points_per_class=40, classes=4)
    assert (ds.x.shape, ds.y.shape, ds.x.dtype, ds.y.dtype) == ((160, 2), (160,), np.float32, np.int64)
    assert ds.num_classes == 4 and ds.source == "spiral"
    assert np.bincount(ds.y).tolist() == [40, 40, 40, 40]
    assert np.all(np.linalg.norm(ds.x, axis=1) <= 0.975 + 1e-6)  # radius = i / N <= 39 / 40


def test_spiral_points_without_noise():
    ds = builtin_datasets.build_spiral(builtin_datasets.SpiralParams(noise=0.0), _ctx(dtype=np.float64))
    np.testing.assert_allclose(ds.x[0], [0.0, 0.0])  # class 0, i = 0: radius 0
    # class 1, i = 50: rate = 0.5, theta = 4*1 + 4*0.5 = 6; (0.5 sin 6, 0.5 cos 6) = (-0.139708, 0.480085)
    np.testing.assert_allclose(ds.x[150], [-0.1397077, 0.4800851], atol=1e-6)
    assert ds.y[150] == 1


def test_spiral_is_deterministic_in_the_seed(registry):
    first = _load(registry, "spiral", _ctx(seed=1))
    again = _load(registry, "spiral", _ctx(seed=1))
    other = _load(registry, "spiral", _ctx(seed=2))
    assert np.array_equal(first.x, again.x)
    assert not np.array_equal(first.x, other.x)
    assert np.array_equal(first.y, other.y)


def test_spiral_val_fraction(registry):
    ds = _load(registry, "spiral", _ctx(), val_fraction=0.1)
    assert (ds.n_train, ds.n_val) == (270, 30)  # 0.1 * 300 = 30 held out
    again = _load(registry, "spiral", _ctx(), val_fraction=0.1)
    assert np.array_equal(ds.x_val, again.x_val)


@pytest.mark.parametrize("params", [{"classes": 1}, {"points_per_class": 0}, {"noise": -0.1}, {"nosie": 0.1}])
def test_spiral_params_are_validated(registry, params):
    with pytest.raises(pydantic.ValidationError):
        registry.get("spiral").params(**params)


# ---------------------------------------------------------------- npz


def test_npz_with_and_without_validation_arrays(registry, tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    np.savez(tmp_path / "train.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]))
    np.savez(tmp_path / "both.npz", x=x, y=np.eye(3)[[0, 1, 2, 0, 1, 2]], x_val=x[:2], y_val=np.eye(3)[[1, 2]])

    ds = _load(registry, "npz", _ctx(tmp_path), path="train.npz")
    assert (ds.x.dtype, ds.y.tolist(), ds.num_classes, ds.n_val) == (np.float32, [0, 1, 2, 0, 1, 2], 3, 0)
    assert ds.source == str(tmp_path / "train.npz")
    both = _load(registry, "npz", _ctx(), path=str(tmp_path / "both.npz"))
    assert (both.n_train, both.n_val, both.y.shape, both.y_val.dtype) == (6, 2, (6, 3), np.float32)


def test_npz_regression_targets(registry, tmp_path):
    np.savez(tmp_path / "r.npz", x=np.ones((4, 3)), y=np.array([0.5, 1.5, 2.5, 3.5]))
    ds = _load(registry, "npz", _ctx(tmp_path), path="r.npz", task="regression")
    assert (ds.y.shape, ds.y.dtype, ds.num_classes) == ((4, 1), np.float32, None)


def _write_npz_cases(tmp_path: Path) -> None:
    x, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    np.savez(tmp_path / "no_y.npz", x=x, labels=y)
    np.savez(tmp_path / "pickled.npz", x=x, y=np.array([0, "a", None, 1], dtype=object))
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0, 1.0], [np.nan, 1.0]]), y=np.array([0, 1]))
    np.savez(tmp_path / "half_val.npz", x=x, y=y, x_val=x)
    np.savez(tmp_path / "good.npz", x=x, y=y)
    np.savez(tmp_path / "with_val.npz", x=x, y=y, x_val=x, y_val=y)
    np.save(tmp_path / "single.npy", x)
    (tmp_path / "noise.npz").write_bytes(b"this is not an archive at all")
    whole = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "folder.npz").mkdir()


@pytest.mark.parametrize("path, expected", [
    ("gods.npz", "npz file {dir}/gods.npz (path 'gods.npz' relative to {dir}) not found (did you mean 'good.npz'?)"),
    ("folder.npz", "folder.npz (path 'folder.npz' relative to {dir}) is a directory, not a file"),
    ("folder.npzz", "folder.npzz (path 'folder.npzz' relative to {dir}) not found (did you mean 'good.npz'?)"),
    ("/dev/null", "npz file /dev/null is not a regular file"),
    ("no_y.npz", "npz file {dir}/no_y.npz has no array 'y'; arrays present: x, labels"),
    ("pickled.npz", "array 'y' holds Python objects, which would need unpickling; nnframe does not unpickle"),
    ("nan.npz", "dataset {dir}/nan.npz: x has 1 NaN or infinite value(s); the first is x[1, 0] = nan"),
    ("half_val.npz", "has x_val but no y_val"),
    ("with_val.npz", "has its own validation set (x_val), and val_fraction is 0.5; set val_fraction to 0"),
    ("single.npy", "holds a single .npy array, not an .npz archive"),
    ("noise.npz", "is not an .npz archive (it does not start with the zip signature)"),
    ("truncated.npz", "npz file {dir}/truncated.npz is corrupt or truncated"),
])
def test_npz_errors(registry, tmp_path, path, expected):
    _write_npz_cases(tmp_path)
    with pytest.raises(DataError) as info:
        _load(registry, "npz", _ctx(tmp_path), path=path, val_fraction=0.5)
    assert str(info.value).startswith("data: ")
    assert expected.format(dir=tmp_path) in str(info.value)
    if "did you mean" not in expected:
        assert "did you mean" not in str(info.value)


def test_npz_corrupt_member(registry, tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        archive.writestr("x.npy", b"garbage that is no npy header")
        archive.writestr("y.npy", b"")
    with pytest.raises(DataError, match="bad.npz is corrupt: its member 'x' is not a .npy array"):
        _load(registry, "npz", _ctx(tmp_path), path="bad.npz")


# ---------------------------------------------------------------- csv


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return name


def test_csv_reads_features_and_label(registry, tmp_path):
    path = _write(tmp_path, "d.csv", "a, label ,b\n1.5,0,2\n\n-3, 2 ,4e1\n0,1,0\n")  # blank line, spaces
    ds = _load(registry, "csv", _ctx(tmp_path, dtype=np.float64), path=path)
    assert ds.x.tolist() == [[1.5, 2.0], [-3.0, 40.0], [0.0, 0.0]]
    assert (ds.y.tolist(), ds.y.dtype, ds.num_classes) == ([0, 2, 1], np.int64, 3)
    assert ds.feature_names == ["a", "b"]  # the order of x's columns, for new rows


def test_csv_drop_leaves_out_columns_that_need_not_be_numbers(registry, tmp_path):
    path = _write(tmp_path, "d.csv", "id,name,a,label\n7,Smith,1.5,0\n8,Jones,-3,2\n")
    ds = _load(registry, "csv", _ctx(tmp_path, dtype=np.float64), path=path, drop=["name", "id"])
    assert (ds.x.tolist(), ds.y.tolist()) == ([[1.5], [-3.0]], [0, 2])
    assert ds.feature_names == ["a"]


def test_csv_delimiter_label_name_regression_and_split(registry, tmp_path):
    rows = "\n".join(f"{i};{i * 0.5}" for i in range(10))
    path = _write(tmp_path, "r.csv", "x;target\n" + rows + "\n")
    ds = _load(registry, "csv", _ctx(tmp_path), path=path, delimiter=";", label="target",
               task="regression", val_fraction=0.2)
    assert (ds.n_train, ds.n_val, ds.y.shape, ds.y.dtype) == (8, 2, (8, 1), np.float32)
    np.testing.assert_allclose(ds.y[:, 0], ds.x[:, 0] * 0.5)  # target = x / 2 in every kept row


@pytest.mark.parametrize("text, params, expected", [
    ("a,label\n1,0\n2,x\n", {}, "csv file {dir}/c.csv, line 3, column 'label': 'x' is not a number"),
    ("a,b,label\n1,2,0\n3,,1\n", {}, "line 3, column 'b': an empty cell is a missing value; every cell must be a "
                                     "finite number (fill the missing values, or leave out their rows)"),
    ("a,b,lable\n1,2,0\n", {}, "has no label column 'label'; columns present: a, b, lable (did you mean 'lable'?); "
                               "data.label names the label column"),
    ("a;b;label\n1;2;0\n", {}, "no label column 'label'; the header is 'a;b;label', one column: is the delimiter ';'? "
                           "(set delimiter: \";\")"),
    ("a\tb\tlabel\n1\t2\t0\n", {}, "is the delimiter '\\t'? (set delimiter: \"\\t\")"),
    ("a,b,label\n1,2,0\n1,2\n", {}, "line 3: 2 cells, but the header has 3 columns"),
    ("a,b,label\n1,2,0\n\"1,2,0\n1,2,0\n", {}, "the row of lines 3-4 (a '\"' opened there is closed only on "
                                                   "line 4, or never): 1 cells, but the header has 3 columns"),
    ("a,b,label\n1,2,0\n\"1,2,0\n" + "1,2,0\n" * 30000, {}, "a cell from line 3 on runs past 131072 characters: a "
                                                             "'\"' that opens a quoted cell there, or before, is "
                                                             "never closed (or the cell is that long)"),
    ("", {}, "is empty; it needs a header row"),
    ("\n \n,,\n", {}, "is empty; it needs a header row"),
    ("a,label\n", {}, "has a header but no data rows"),
    ("a,a,label\n1,2,0\n", {}, "the header names column 'a' twice"),
    ("sep=;\na;label\n1;0\n", {}, "its first line is Excel's note of the delimiter, not a header: delete that line "
                                  "and set delimiter: \";\""),
    ("sep=;\na;label\n1;0\n", {"delimiter": ";"}, "its first line is Excel's note of the delimiter, not a header: "
                                                   "delete that line"),
    ("a,,label\n1,2,0\n", {}, "header column 2 has no name"),
    ("label\n0\n1\n", {}, "has only the label column 'label'"),
    ("id,label\n1,0\n2,1\n", {"drop": ["id"]}, "has only the label column 'label'"),
    ("a,label\n1,0\n2,1.5\n", {}, "dataset {dir}/c.csv: y[1] (line 3) = 1.5 is not a class index"),
    ("a,label\n1,0\n2,-1\n", {}, "y[1] (line 3) = -1.0 is negative"),
    ("a,label\nnan,0\n2,1\n", {}, "line 2, column 'a': 'nan' is a missing or infinite value"),
    ("a,label\n1,0\n2,-Infinity\n", {}, "line 3, column 'label': '-Infinity' is a missing or infinite value"),
    ("id,a,label\nx1,1,0\nx2,2,1\n", {"drop": ["idd"]}, "has no column 'idd' to drop; columns present: id, a, "
                                                         "label (did you mean 'id'?)"),
    ("id,a,label\n1,1,0\n2,2,1\n", {"drop": ["label"]}, "drop names the label column 'label'"),
    ("id,a,label\nx1,1,0\nx2,2,1,9\n", {"drop": ["id"]}, "line 3: 4 cells, but the header has 3 columns"),
    ("a,label\n1,0\n2\0,1\n", {}, "line 3, column 'a': '2\\x00' is not a number"),  # numpy read it as 2
    ("id,a,label\nx1,1,0\nx2,2\0,1\n", {"drop": ["id"]}, "line 3, column 'a': '2\\x00' is not a number"),
    ("name,a,label\nSmith,1,0\n", {}, "line 2, column 'name': 'Smith' is not a number; every cell must be numeric "
                                     "(labels as class indices 0..C-1); a column that is no feature, such as a name "
                                     "or an id, is left out with drop: [name]"),
    (",a,label\n0,1,0\n1,2,1\n", {}, "header column 1 has no name (pandas writes its index there: save with "
                                      "to_csv(index=False))"),
])
def test_csv_errors(registry, tmp_path, text, params, expected):
    path = _write(tmp_path, "c.csv", text)
    with pytest.raises(DataError) as info:
        _load(registry, "csv", _ctx(tmp_path), path=path, **params)
    assert str(info.value).startswith("data: ")
    assert expected.format(dir=tmp_path) in str(info.value)
    if "did you mean" not in expected:
        assert "did you mean" not in str(info.value)


def test_csv_columns_named_by_numbers_as_pandas_writes_them(registry, tmp_path):
    _write(tmp_path, "frame.csv", "0,1,2\n1.5,2,0\n3,4,1\n")
    for label, drop in ((2, [0]), (np.int64(2), (np.int64(0),)), ("2", {0}), (2, np.array([0]))):  # numpy's too
        ds = _load(registry, "csv", _ctx(tmp_path, dtype=np.float64), path="frame.csv", label=label, drop=drop)
        assert (ds.feature_names, ds.x.tolist(), ds.y.tolist()) == (["1"], [[2.0], [4.0]], [0, 1])


def test_csv_a_column_name_matches_in_either_unicode_form(registry, tmp_path):
    import unicodedata

    _write(tmp_path, "mac.csv", unicodedata.normalize("NFD", "a,Espèce\n1,0\n2,1\n"))
    ds = _load(registry, "csv", _ctx(tmp_path, dtype=np.float64), path="mac.csv",
               label=unicodedata.normalize("NFC", "Espèce"))
    assert ds.y.tolist() == [0, 1]


def test_csv_a_tab_written_where_yaml_reads_no_escape_is_told_how_to_write_it():
    from nnframe.builtin.datasets import CsvParams

    with pytest.raises(pydantic.ValidationError, match=r'write "\\t" in double quotes'):
        CsvParams(path="d.csv", delimiter="\\t")


def test_csv_not_utf8_and_missing(registry, tmp_path):
    (tmp_path / "latin.csv").write_bytes(("a,label\n" + "1,0\n" * 3000 + "\xe9,0\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv is not UTF-8 text: line 3002 holds the byte 0xE9 \(at byte "
                                        r"12008 of the file\); save it as UTF-8"):  # not the decoder's chunk's byte
        _load(registry, "csv", _ctx(tmp_path), path="latin.csv")
    (tmp_path / "mac.csv").write_bytes(b"x,label\r1,0\r2,1\r3\xe9,0\r")  # Excel's "CSV (Macintosh)"
    with pytest.raises(DataError, match="mac.csv is not UTF-8 text: line 4 holds the byte 0xE9"):
        _load(registry, "csv", _ctx(tmp_path), path="mac.csv")
    (tmp_path / "excel.txt").write_bytes("a\tlabel\n1\t0\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"excel.txt is UTF-16 text \(as Excel saves \"Unicode Text\"\); save it as "
                                        r"\"CSV UTF-8\""):
        _load(registry, "csv", _ctx(tmp_path), path="excel.txt", delimiter="\t")
    with pytest.raises(DataError, match=r"csv file .*missing.csv \(path 'missing.csv' relative to .*\) not found"):
        _load(registry, "csv", _ctx(tmp_path), path="missing.csv")


def _write_zip_of_a_spreadsheet(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")


@pytest.mark.parametrize("name, write, expected", [
    ("data.npz", lambda p: np.savez(p, x=np.ones((3, 2)), y=np.zeros(3)),
     "looks like an .npz file (a zip archive of numpy arrays), not CSV text; use type: npz"),
    ("data.npz", lambda p: np.savez_compressed(p, x=np.ones((3, 2)), y=np.zeros(3)), "looks like an .npz file"),
    ("data.npy", lambda p: np.save(p, np.ones((3, 2))),
     "looks like an .npy file (numpy's array format), not CSV text; save x and y with np.savez(path, x=x, y=y) "
     "and use type: npz"),
    ("data.xlsx", _write_zip_of_a_spreadsheet, "is a zip archive (as an .npz or an .xlsx file is), not CSV text"),
], ids=["npz", "compressed npz", "npy", "xlsx"])
def test_csv_given_a_numpy_file_or_a_zip_says_what_it_is_not_that_it_is_not_utf8(registry, tmp_path, name, write,
                                                                                   expected):
    write(tmp_path / name)
    with pytest.raises(DataError) as info:
        _load(registry, "csv", _ctx(tmp_path), path=name)
    assert str(info.value).startswith(f"data: csv file {tmp_path / name} ")
    assert expected in str(info.value) and "UTF-8" not in str(info.value)


def test_validate_a_csv_that_is_an_npz_exits_2_with_one_message(tmp_path):
    config = _experiment(tmp_path, {"type": "csv", "path": "data.npz"})
    np.savez(tmp_path / "data.npz", x=np.ones((3, 2)), y=np.zeros(3))
    result = _validate(config)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {config}: data: csv file {tmp_path / 'data.npz'} looks like an .npz")
    assert result.stderr.count("error: ") == 1 and "Traceback" not in result.output


def test_validate_an_npz_whose_x_has_no_features_exits_2_naming_the_shape(tmp_path):
    config = _experiment(tmp_path, {"type": "npz", "path": "data.npz"})
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 0)), y=np.array([0, 1, 0, 1]))
    result = _validate(config)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {config}: data: dataset {tmp_path / 'data.npz'}: x has no features (shape "
                             "(4, 0)); each example needs at least one feature, or the model learns only a bias\n")


def test_csv_delimiter_must_be_one_character(registry):
    with pytest.raises(pydantic.ValidationError, match="delimiter must be one character"):
        registry.get("csv").params(path="a.csv", delimiter=";;")


@pytest.mark.parametrize("delimiter", ["\n", "\r", '"'])
def test_csv_delimiter_cannot_be_a_line_break_or_the_quote(registry, delimiter: str) -> None:
    """numpy's reader refuses them with a TypeError, which reached the user as an internal error."""
    with pytest.raises(pydantic.ValidationError, match="delimiter cannot be a line break or the quote character"):
        registry.get("csv").params(path="a.csv", delimiter=delimiter)


def test_the_resolved_data_path_names_the_file_the_dataset_read_through_links(tmp_path: Path) -> None:
    from nnframe.components import absolute_path

    (tmp_path / "real" / "sub").mkdir(parents=True)
    np.savez(tmp_path / "real" / "blobs.npz", x=np.zeros((4, 2)), y=np.zeros(4, dtype=np.int64))
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "link").symlink_to(tmp_path / "real" / "sub")
    resolved = absolute_path("link/../blobs.npz", tmp_path / "project")
    assert os.path.samefile(resolved, tmp_path / "real" / "blobs.npz")
    assert absolute_path("~/data.npz", tmp_path) == str(Path.home() / "data.npz")


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_a_data_file_the_system_cannot_read_is_a_data_error_naming_it(registry, tmp_path, monkeypatch, kind):
    path = tmp_path / f"data.{kind}"
    if kind == "npz":
        np.savez(path, x=np.zeros((4, 2)), y=np.arange(4) % 2)
    else:
        path.write_text("a,label\n1,0\n2,1\n", encoding="utf-8")
    real_open = Path.open

    def failing_open(self, *args, **kwargs):
        if self == path:
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(DataError, match=rf"{kind} file {path} cannot be read: Input/output error"):
        _load(registry, kind, _ctx(tmp_path), path=path.name)


@pytest.mark.parametrize("text, fast", [
    ("\ufeffa,label,b\r\n1.5,0,2\r\n\r\n-3,2,4e1\r\n0,1,\"0.5\"\r\n", True),  # Excel's BOM and CRLF, a quoted number
    ("a, label ,b\n1.5,0,2\n-3, 2 ,4e1\n0,1,0.5\n", True),
    ("id,a,label,b\nx1,1.5,0,2\n\"x,2\",-3,2,4e1\nx3,0,1,0.5\n", True),  # a column of words, dropped, read as 0
    ("a,label,b\n1.5,0,2\n-3,2,4e1\n,,\n0,1,0.5\n", False),  # a row of empty cells, which the other reader skips
])
def test_csv_read_by_numpy_or_row_by_row_gives_the_same_dataset(registry, tmp_path, text: str, fast: bool):
    path = tmp_path / "d.csv"
    path.write_bytes(text.encode("utf-8"))
    drop = ["id"] if "id" in text else []
    assert (csv_table._numeric_table(path, ",", drop) is not None) == fast
    ds = _load(registry, "csv", _ctx(tmp_path, dtype=np.float64), path="d.csv", drop=drop)
    assert ds.x.tolist() == [[1.5, 2.0], [-3.0, 40.0], [0.0, 0.5]] and ds.y.tolist() == [0, 2, 1]
    assert ds.feature_names == ["a", "b"]


def test_csv_skips_blank_lines_above_the_header_as_it_does_between_rows(registry, tmp_path):
    for name, text in [("fast.csv", "\n\r\n  \na,label\n1,0\n\n2,1\n"),
                       ("slow.csv", "\n,,\nid,a,label\nx,1,0\ny,2,1\n")]:  # a column of words: read row by row
        _write(tmp_path, name, text)
        ds = _load(registry, "csv", _ctx(tmp_path, dtype=np.float64), path=name, drop=["id"] if "id" in text else [])
        assert (ds.x.tolist(), ds.y.tolist(), ds.feature_names) == ([[1.0], [2.0]], [0, 1], ["a"])


@pytest.mark.parametrize("text, params, expected", [
    ("a,label\n1,0\n2,dog\n", {}, "line 3, column 'label': 'dog' is not a number; labels must be numbers, class "
                                  "indices 0..C-1 for C classes: string labels need encoding to integers first "
                                  "(nnframe does not encode them)"),
    ("a,label\n1,True\n2,False\n", {}, "line 2, column 'label': 'True' is not a number; labels must be numbers"),
    ("a,label\n1,0.5\n2,high\n", {"task": "regression"}, "'high' is not a number; the targets of a regression must "
                                                         "be numbers"),
    ("a,b,label\n1,NA,0\n", {}, "column 'b': 'NA' looks like a missing value; every cell must be a finite number "
                                "(fill the missing values, or leave out their rows)"),
    ("a,label\n1,N/A\n", {}, "column 'label': 'N/A' looks like a missing value"),
    ("a,b,label\n1, null ,0\n", {}, "' null ' looks like a missing value"),
    ("a,b,label\n1,None,0\n", {}, "'None' looks like a missing value"),
    ("a,b,label\n1,?,0\n", {}, "'?' looks like a missing value"),
    ("a,b,label\n1,-,0\n", {}, "'-' looks like a missing value"),
    ("a,b,label\n1,#N/A,0\n", {}, "'#N/A' looks like a missing value"),
    ('a,b,label\n1,"2,041",0\n', {}, "column 'b': '2,041' is not a number: numbers must use '.' as the decimal point "
                                     "and no thousands separators"),
    ('a,b,label\n1,"1,000",0\n', {}, "'1,000' is not a number: numbers must use '.' as the decimal point"),
    ("a;b;label\n1;1.000,5;0\n", {"delimiter": ";"}, "'1.000,5' is not a number: numbers must use '.'"),
    ('a,label\n1,0\n2,"200,000"\n', {"task": "regression"}, "'200,000' is not a number: numbers must use '.'"),
])
def test_csv_a_cell_that_is_no_number_gets_the_fix_that_fits_it_not_drop(registry, tmp_path, text, params, expected):
    path = _write(tmp_path, "c.csv", text)
    with pytest.raises(DataError) as info:
        _load(registry, "csv", _ctx(tmp_path), path=path, **params)
    assert expected in str(info.value)
    assert "drop:" not in str(info.value)


@pytest.mark.parametrize("token", sorted(csv_table.MISSING_TOKENS))
def test_csv_every_missing_value_token_is_named_a_missing_value(registry, tmp_path, token):
    path = _write(tmp_path, "c.csv", f"a,b,label\n1,2,0\n3,{token.upper()},1\n")
    with pytest.raises(DataError, match="line 3, column 'b': '.*' (looks like|is) a missing"):  # NAN: a float
        _load(registry, "csv", _ctx(tmp_path), path=path)


@pytest.mark.parametrize("text, expected", [
    ("# made by a logger\na,b,label\n1,2,0\n", "has no label column 'label'; the header is '# made by a logger': the "
                                               "first line that is not blank is taken as the header row, and nnframe "
                                               "reads no comment lines; remove the lines starting with '#' above the "
                                               "header"),
    ("# x,label\n1,2,0\n", "line 2: 3 cells, but the header has 2 columns; the header is '# x,label': the first line "
                           "that is not blank is taken as the header row"),
    # a semicolon file with decimal commas: the comma splits its rows, which the delimiter explains, not their length
    ("a;b;label\n1,5;2;0\n3;4,2;1\n", "the header is 'a;b;label', one column: is the delimiter ';'?"),
    ("1,2,0\n3,4,1\n", "columns present: 1, 2, 0; every name in the header is a number: the file seems to have no "
                       "header row, and nnframe needs one"),
    ("1.5,-2,0\nx,4,1\n", "every name in the header is a number: the file seems to have no header row"),
    ("0,1,0\n3,4,1\n", "the header names column '0' twice; every name in the header is a number: the file seems "
                       "to have no header row, and nnframe needs one"),
])
def test_csv_a_first_line_that_is_no_header_is_named(registry, tmp_path, text, expected):
    path = _write(tmp_path, "c.csv", text)
    with pytest.raises(DataError) as info:
        _load(registry, "csv", _ctx(tmp_path), path=path)
    assert expected in str(info.value)


def test_csv_a_header_with_one_number_among_names_gets_no_header_hint(registry, tmp_path):
    path = _write(tmp_path, "c.csv", "a,2020,target\n1,2,0\n")
    with pytest.raises(DataError) as info:
        _load(registry, "csv", _ctx(tmp_path), path=path)
    assert "no header row" not in str(info.value)


# ---------------------------------------------------------------- through the command line


def _csv_experiment(tmp_path: Path, text: str, **data) -> Path:
    (tmp_path / "data.csv").write_text(text, encoding="utf-8")
    return _experiment(tmp_path, {"type": "csv", "path": "data.csv", **data})


def _experiment(tmp_path: Path, data: dict) -> Path:
    config = {"name": "data", "data": data,
              "model": [{"type": "affine", "out": 2}], "loss": {"type": "softmax_cross_entropy"},
              "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"epochs": 1, "batch_size": 2}}
    if data.get("task") == "regression":
        config = {**config, "model": [{"type": "affine", "out": 1}], "loss": {"type": "mse"}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _validate(config: Path):
    return CliRunner().invoke(app, ["validate", str(config)])


def test_validate_a_csv_of_string_labels_exits_2_with_one_message(tmp_path):
    config = _csv_experiment(tmp_path, "a,label\n1,cat\n2,dog\n")
    result = _validate(config)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {config}: data: csv file ") and result.stderr.count("error: ") == 1
    assert "'cat' is not a number; labels must be numbers" in result.stderr and "drop:" not in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("label, val_fraction, expected", [
    ("1.5", 0.0, "y[3] (line 8) = 1.5 is not a class index"),
    ("-1", 0.0, "y[3] (line 8) = -1.0 is negative"),
    ("7", 0.0, "y[3] (line 8) is class 7, but the model outputs 2 values"),
    ("7", 0.25, "y[3] (line 8) is class 7, but the model outputs 2 values"),  # named as in the file, not the split
])
def test_a_bad_label_in_a_csv_names_the_line_it_is_on(tmp_path, label, val_fraction, expected):
    rows = ["1,2,0", "3,4,1", "", "5,6,1", f"7,8,{label}", "9,1,0", "2,3,1", "4,5,0", "6,7,1"]
    config = _csv_experiment(tmp_path, "\n\na,b,label\n" + "\n".join(rows) + "\n", val_fraction=val_fraction)
    result = _validate(config)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr


def test_a_csv_val_path_is_the_validation_set_with_its_columns_in_the_training_files_order(registry, tmp_path):
    _write(tmp_path, "train.csv", "id,a,b,label\nx,1,2,0\ny,3,4,1\nz,5,6,2\n")
    _write(tmp_path, "val.csv", "label,b,id,a\n1,20,w,10\n")
    ds = _load(registry, "csv", _ctx(tmp_path, dtype=np.float64), path="train.csv", val_path="val.csv", drop=["id"])
    assert (ds.x.tolist(), ds.y.tolist()) == ([[1, 2], [3, 4], [5, 6]], [0, 1, 2])
    assert (ds.x_val.tolist(), ds.y_val.tolist(), ds.feature_names) == ([[10, 20]], [1], ["a", "b"])


@pytest.mark.parametrize("val_text, params, expected", [
    ("a,label\n1,0\n", {}, "csv file {dir}/val.csv (val_path) must have the columns of {dir}/train.csv (it lacks 'b')"),
    ("a,b,c,label\n1,2,3,0\n", {}, "(it has 'c' too)"),
    ("a,b,label\n1,2,0\n", {"val_fraction": 0.2}, "val_path 'val.csv' is the validation set, and val_fraction is 0.2"),
    ("a,b,label\n1,2,0\n1,2,-1\n", {}, "y_val[1] (line 3 of {dir}/val.csv) = -1.0 is negative"),
    ("id,a,b,label\nx,1,2,0\n", {}, "(it has 'id' too)"),  # not the advice to drop it, which would fail train.csv
    ("a;b;label\n1;2;0\n", {}, "(it lacks 'a', 'b', 'label'; it has 'a;b;label' too)"),
])
def test_a_csv_val_path_that_does_not_fit_is_refused(registry, tmp_path, val_text, params, expected):
    _write(tmp_path, "train.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n9,1,1\n")
    _write(tmp_path, "val.csv", val_text)
    with pytest.raises(DataError) as caught:
        _load(registry, "csv", _ctx(tmp_path), path="train.csv", val_path="val.csv", **params)
    assert expected.format(dir=tmp_path) in str(caught.value)


def test_a_run_on_a_csv_val_path_evaluates_on_it_and_keeps_its_path_absolute(tmp_path):
    _write(tmp_path, "val.csv", "a,b,label\n1,2,0\n3,4,1\n")
    config = _csv_experiment(tmp_path, "a,b,label\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n", val_path="val.csv")
    result = CliRunner().invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "4 training and 2 validation examples of 2 features, 2 classes" in result.stdout
    run_dir = next((tmp_path / "runs" / "data").iterdir())
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["val_path"] == str(tmp_path / "val.csv")
    assert "val/accuracy" in json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["metrics"]


def test_a_csv_val_path_to_the_training_file_is_refused(registry, tmp_path):
    _write(tmp_path, "train.csv", "a,b,label\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match="val_path './train.csv' is the training file"):
        _load(registry, "csv", _ctx(tmp_path), path="train.csv", val_path="./train.csv")


def test_a_row_of_a_csv_is_named_by_its_line_until_the_file_no_longer_has_it(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('\na,label\n1,0\n\n"2\n",1\n3,0\n', encoding="utf-8")
    lines = csv_table.RowLines(path, ",")
    assert [lines(row) for row in range(4)] == ["line 3", "line 6", "line 7", ""]  # a quoted cell's row ends at 6
    assert csv_table.RowLines(path, ",", name_file=True)(0) == f"line 3 of {path}"
    path.write_text("a\n", encoding="utf-8")
    assert lines(1) == ""


def _notes(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


def test_labels_of_a_single_class_get_a_note_naming_the_class(tmp_path):
    notes = _notes(_validate(_csv_experiment(tmp_path, "a,b,label\n1,2,1\n3,4,1\n5,6,1\n")))
    assert notes == ["note: the training labels hold only one class, 1 (all 3 examples): a model reaches 100% "
                     "training accuracy by always answering it, without learning anything; check the label column, "
                     "and that the data holds examples of every class"]
    assert _notes(_validate(_csv_experiment(tmp_path, "a,b,label\n1,2,1\n3,4,0\n5,6,1\n"))) == []


def test_one_hot_labels_of_a_single_class_get_the_note_too(tmp_path):
    np.savez(tmp_path / "one.npz", x=np.zeros((3, 2)), y=np.eye(2)[[1, 1, 1]])
    notes = _notes(_validate(_experiment(tmp_path, {"type": "npz", "path": "one.npz"})))
    assert len(notes) == 1 and "only one class, 1 (all 3 examples)" in notes[0]
    np.savez(tmp_path / "two.npz", x=np.zeros((3, 2)), y=np.eye(2)[[1, 0, 1]])
    assert _notes(_validate(_experiment(tmp_path, {"type": "npz", "path": "two.npz"}))) == []


def test_classes_only_the_validation_examples_hold_get_a_note(tmp_path):
    x = np.zeros((6, 2))
    np.savez(tmp_path / "unseen.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]), x_val=x[:3], y_val=np.array([0, 2, 3]))
    config = _experiment(tmp_path, {"type": "npz", "path": "unseen.npz"})
    config.write_text(config.read_text(encoding="utf-8").replace("out: 2", "out: 4"), encoding="utf-8")
    notes = _notes(_validate(config))
    assert len(notes) == 1 and "the validation examples hold class(es) 2, 3 that no training example holds" in notes[0]
    np.savez(tmp_path / "seen.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]), x_val=x[:3], y_val=np.array([0, 1, 1]))
    assert _notes(_validate(_experiment(tmp_path, {"type": "npz", "path": "seen.npz"}))) == []


def test_binary_labels_in_one_column_are_told_apart_as_classes():
    """A plugin's dataset may keep 0/1 labels as an (N, 1) column, which argmax would read as one class."""
    from types import SimpleNamespace

    from nnframe.launch import _one_class_notes

    two = SimpleNamespace(classification=True, y=np.array([[0], [1], [1]]))
    assert _one_class_notes(two) == []
    one = SimpleNamespace(classification=True, y=np.array([[1], [1], [1]]))
    assert "only one class, 1 (all 3 examples)" in _one_class_notes(one)[0]


def test_regression_targets_far_beyond_unit_scale_get_a_note_naming_mean_and_scale(tmp_path):
    prices = "a,b,price\n1,2,200000\n3,4,250000\n5,6,150000\n"
    notes = _notes(_validate(_csv_experiment(tmp_path, prices, label="price", task="regression")))
    # mean (200000 + 250000 + 150000) / 3 = 2e5; standard deviation sqrt((0 + 50000² + 50000²) / 3) = 40825
    assert notes == ["note: 1 regression target(s) reach far beyond unit scale (y[:, 0] mean 2e+05, standard "
                     "deviation 4.08e+04); a model predicts near 0 at first and such targets usually train poorly: "
                     "standardize them (subtract each target's mean, divide by its standard deviation; "
                     "data.standardize scales the inputs only), and un-standardize the predictions (multiply by the "
                     "standard deviation, add the mean)"]
    small = "a,b,price\n1,2,0.2\n3,4,-999\n5,6,0.15\n"  # 999 is below LARGE_INPUT, 1e3
    assert _notes(_validate(_csv_experiment(tmp_path, small, label="price", task="regression"))) == []
    np.savez(tmp_path / "whole.npz", x=np.ones((3, 2)), y=np.array([200000, 250000, 150000]))  # whole dollars
    whole = _experiment(tmp_path, {"type": "npz", "path": "whole.npz", "task": "regression"})
    assert _notes(_validate(whole)) == notes


def test_inputs_far_beyond_unit_scale_get_a_note_that_data_standardize_answers(tmp_path):
    incomes = "income,rooms,label\n52000,3,0\n31000,2,1\n78000,4,0\n"
    config = _csv_experiment(tmp_path, incomes)
    assert _notes(_validate(config)) == ["note: 1 input feature(s) reach far beyond unit scale (x[:, 0] up to "
                                         "7.8e+04); such inputs usually train poorly: standardize them "
                                         "(data.standardize: true)"]
    result = CliRunner().invoke(app, ["validate", str(config), "data.standardize=true"])
    assert _notes(result) == []


def test_csv_a_date_is_a_column_to_leave_out_not_a_number_with_separators(registry, tmp_path):
    path = _write(tmp_path, "c.csv", "a,b,label\n1,2024.01.02,0\n")
    with pytest.raises(DataError, match=r"'2024\.01\.02' is not a number; every cell must be numeric.*drop: \[b\]"):
        _load(registry, "csv", _ctx(tmp_path), path=path)
