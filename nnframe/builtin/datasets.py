"""The built-in datasets, registered through the same hook a third-party plugin uses.

``spiral`` generates the book's three-armed spiral; ``npz`` and ``csv`` read
arrays from files, with relative paths resolved against the config's directory
(a CSV file's table through :mod:`nnframe.builtin.csv_table`).
"""

from __future__ import annotations

import os
import unicodedata
import zipfile
from numbers import Integral
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from nnframe.builtin.csv_table import RowLines, read_csv_table, read_header
from nnframe.builtin.file_messages import missing_message, unreadable
from nnframe.components import Component, DatasetContext, dataset
from nnframe.data import Dataset, DatasetParams
from nnframe.errors import DataError, close_match, did_you_mean
from nnframe.hookspecs import hookimpl
from nnframe.limits import MAX_COUNT

Task = Literal["classification", "regression"]
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
MAX_NOISE = 1e6
"""Far past the few radians that already spread the angles evenly; a noise near 1e308 overflowed to NaN points."""


class SpiralParams(DatasetParams):
    """The book's spiral: ``classes`` arms of ``points_per_class`` 2-D points each."""

    points_per_class: int = Field(100, ge=1, le=MAX_COUNT, description="points on each arm")
    classes: int = Field(3, ge=2, le=MAX_COUNT, description="number of arms, one class each")
    noise: float = Field(0.2, ge=0.0, le=MAX_NOISE, description="standard deviation of the angle noise, in radians "
                                                                 "(from a few radians on, the angles are uniform)")

    @model_validator(mode="after")
    def _fits_one_array(self) -> SpiralParams:
        if self.points_per_class * self.classes > MAX_COUNT:
            raise ValueError(f"points_per_class times classes is {self.points_per_class * self.classes}, more "
                             f"than {MAX_COUNT} points")
        return self


def build_spiral(params: SpiralParams, ctx: DatasetContext) -> Dataset:
    """Spiral arms: for class j and rate = i/N, radius = rate, theta = 4j + 4 rate + noise * randn.

    ``x = [radius sin(theta), radius cos(theta)]``, ``y = j``; shapes ``(C N, 2)`` and
    ``(C N,)``. The same points as dataset/spiral.py of Deep Learning from
    Scratch 2, drawing the noise from ``ctx.rng`` in the same class-then-point order.
    """
    n, classes = params.points_per_class, params.classes
    rate = np.arange(n) / n
    noise = ctx.rng.standard_normal((classes, n)) * params.noise
    theta = 4.0 * np.arange(classes)[:, None] + 4.0 * rate + noise
    x = np.stack([rate * np.sin(theta), rate * np.cos(theta)], axis=-1).reshape(classes * n, 2)
    y = np.repeat(np.arange(classes, dtype=np.int64), n)
    return Dataset(x, y, num_classes=classes, source="spiral")


class FileParams(DatasetParams):
    """The fields of a dataset read from one file."""

    relative_paths = ("path",)

    path: str = Field(description="file path, relative to the config file's directory")
    task: Task = Field("classification", description="classification: labels are class indices or one-hot "
                                                     "rows; regression: float targets")


class NpzParams(FileParams):
    """An .npz archive with arrays ``x``, ``y`` and optionally ``x_val``, ``y_val``."""


def build_npz(params: NpzParams, ctx: DatasetContext) -> Dataset:
    """Arrays x, y (and optional x_val, y_val) from a numpy .npz archive; pickled arrays are refused."""
    path = _resolve(params.path, ctx, "npz")
    _check_zip(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: _read_array(archive, name, path) for name in archive.files
                      if name in ("x", "y", "x_val", "y_val")}
            present = archive.files
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DataError(f"npz file {path} is corrupt or truncated: {exc}") from None
    for name in ("x", "y"):
        if name not in arrays:
            raise DataError(missing_message(f"npz file {path} has no array {name!r}", name, present, "arrays"))
    if "x_val" in arrays and "y_val" in arrays and params.val_fraction > 0:
        raise DataError(f"npz file {path} has its own validation set (x_val), and val_fraction is "
                        f"{params.val_fraction}; set val_fraction to 0 to use x_val, or save the file without it")
    return Dataset(arrays["x"], arrays["y"], arrays.get("x_val"), arrays.get("y_val"),
                   source=str(path), classification=params.task == "classification")


class CsvParams(FileParams):
    """A CSV file with a header row: one label column, every other column a numeric feature."""

    relative_paths = ("path", "val_path")

    label: str = Field("label", description="name of the label (target) column")
    delimiter: str = Field(",", description="the one character between cells")
    drop: list[str] = Field(default_factory=list, description="columns that are neither features nor the label, "
                                                              "such as an id; left out")
    val_path: str | None = Field(None, description="a second CSV file with the same columns, kept as the "
                                                   "validation set (val_fraction then stays 0)")

    @field_validator("label", mode="before")
    @classmethod
    def _number_as_name(cls, value: object) -> object:
        """A header pandas writes for a frame without column names is ``0,1,2``: ``label: 4`` names column 4. A
        name is matched as :func:`~nnframe.builtin.csv_table.column_name` reads the header's."""
        if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)):  # numpy's too: df.columns[-1]
            return str(int(value))
        return unicodedata.normalize("NFC", value) if isinstance(value, str) else value

    @field_validator("drop", mode="before")
    @classmethod
    def _numbers_as_names(cls, value: object) -> object:
        if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):  # what pydantic takes as a list
            return [cls._number_as_name(item) for item in value]
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if value == "\\t":  # '\t' in single quotes or none: YAML reads escapes in double quotes only
            raise ValueError(f"delimiter must be one character; found {value!r}, a backslash and a letter: write "
                             f"\"{value}\" in double quotes, where YAML reads it as one character (in an override, "
                             f"quoted for the shell too: 'data.delimiter=\"{value}\"')")
        if len(value) != 1:
            raise ValueError(f"delimiter must be one character; found {value!r}")
        if value in "\r\n\"":  # a line break ends a row, and the quote encloses a cell that holds a delimiter
            raise ValueError(f"delimiter cannot be a line break or the quote character '\"'; found {value!r}")
        return value


def build_csv(params: CsvParams, ctx: DatasetContext) -> Dataset:
    """Features and a label column from a CSV file with a header row, and from a second one for validation."""
    path = _resolve(params.path, ctx, "csv")
    header, values = _csv_table(path, params)
    x_val = y_val = val_lines = None
    if params.val_path is not None:
        val_path = _val_file(params, ctx, path, header)
        val_header, val_values = _csv_table(val_path, params)  # its columns are the training file's: _val_file
        x_val, y_val = _features_and_label(val_values[:, [val_header.index(c) for c in header]], header, params.label)
        val_lines = RowLines(val_path, params.delimiter, name_file=True)
    x, y = _features_and_label(values, header, params.label)
    return Dataset(x, y, x_val, y_val, source=str(path), classification=params.task == "classification",
                   feature_names=[name for name in header if name != params.label],
                   row_origin=RowLines(path, params.delimiter), val_row_origin=val_lines)


def _val_file(params: CsvParams, ctx: DatasetContext, path: Path, header: list[str]) -> Path:
    """The validation file, refused beside a ``val_fraction``, where it is the training file, and where its header
    names other columns than the training file's (before its cells are read, whose advice would be for both)."""
    if params.val_fraction > 0:
        raise DataError(f"csv dataset: val_path {params.val_path!r} is the validation set, and val_fraction is "
                        f"{params.val_fraction}; give one of them")
    val_path = _resolve(params.val_path, ctx, "csv")
    if os.path.samefile(val_path, path):
        raise DataError(f"csv dataset: val_path {params.val_path!r} is the training file {path}; a validation set "
                        "holds other examples (the run measures the training set at its end anyway)")
    _check_not_numpy(val_path)
    val_header = read_header(val_path, params.delimiter)
    if val_header:
        _same_columns([name for name in val_header if name not in params.drop], header, val_path, path)
    return val_path


def _csv_table(path: Path, params: CsvParams) -> tuple[list[str], np.ndarray]:
    _check_not_numpy(path)
    header, values = read_csv_table(path, params)
    if len(header) < 2:
        raise DataError(f"csv file {path} has only the label column {params.label!r}; it needs feature columns")
    return header, values


def _same_columns(found: list[str], columns: list[str], path: Path, train: Path) -> None:
    """A validation file must have the training file's columns, in any order."""
    missing, extra = [c for c in columns if c not in found], [c for c in found if c not in columns]
    if missing or extra:
        parts = [f"it lacks {', '.join(map(repr, missing))}"] if missing else []
        parts += [f"it has {', '.join(map(repr, extra))} too"] if extra else []
        raise DataError(f"csv file {path} (val_path) must have the columns of {train} ({'; '.join(parts)})")


def _features_and_label(values: np.ndarray, header: list[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    column = header.index(label)
    return np.delete(values, column, axis=1), values[:, column]


@hookimpl
def nnframe_register_datasets() -> list[Component]:
    return [
        dataset("spiral", SpiralParams, build_spiral, "the book's spiral: 2-D points on C arms"),
        dataset("npz", NpzParams, build_npz, "arrays x, y (, x_val, y_val) from a .npz file"),
        dataset("csv", CsvParams, build_csv, "a CSV file with a header row and a label column"),
    ]


CONFIG_SUFFIXES = (".yaml", ".yml")
"""Configs, which live beside their data, are never suggested for a data file (``mlp.npz``: not ``mlp.yaml``)."""


def _resolve(path: str, ctx: DatasetContext, kind: str) -> Path:
    expanded = os.path.expanduser(path)
    resolved = ctx.path(path)
    if resolved.is_file():
        return resolved
    where = "" if os.path.isabs(expanded) else f" (path {path!r} relative to {ctx.base_dir})"
    if resolved.is_dir():
        problem = "is a directory, not a file"
    elif resolved.is_symlink() and not resolved.exists():
        problem = "is a link that leads nowhere (to a missing file, or in a loop)"
    elif path.startswith("~") and expanded == path:
        problem = f"not found: no home directory is known for {path.split('/')[0]!r}"
    else:
        problem = "is not a regular file" if resolved.exists() else "not found"
    message = f"{kind} file {resolved}{where} {problem}"
    siblings = ([p.name for p in resolved.parent.iterdir() if p.is_file() and p.suffix not in CONFIG_SUFFIXES]
                if resolved.parent.is_dir() and not resolved.exists() else [])
    raise DataError(message + did_you_mean(close_match(resolved.name, siblings)))


def _first_bytes(path: Path, kind: str) -> bytes:
    """The first bytes of a data file, enough for numpy's and zip's signatures."""
    try:
        with path.open("rb") as file:
            return file.read(6)
    except OSError as exc:
        raise unreadable(kind, path, exc) from None


def _check_zip(path: Path) -> None:
    magic = _first_bytes(path, "npz")
    if magic.startswith(_NPY_MAGIC):
        raise DataError(f"npz file {path} holds a single .npy array, not an .npz archive; "
                        "save it with np.savez(path, x=x, y=y)")
    if not magic.startswith(_ZIP_MAGIC):
        raise DataError(f"npz file {path} is not an .npz archive (it does not start with the zip signature); "
                        "save it with np.savez(path, x=x, y=y)")


def _check_not_numpy(path: Path) -> None:
    """Refuse a numpy file, or another zip archive, given as CSV: its signature says what it is, where reading it
    as text would only say it is not UTF-8."""
    magic = _first_bytes(path, "csv")
    if magic.startswith(_NPY_MAGIC):
        raise DataError(f"csv file {path} looks like an .npy file (numpy's array format), not CSV text; save x "
                        "and y with np.savez(path, x=x, y=y) and use type: npz")
    if magic.startswith(_ZIP_MAGIC) and _holds_npy_arrays(path):
        raise DataError(f"csv file {path} looks like an .npz file (a zip archive of numpy arrays), not CSV text; "
                        "use type: npz")
    if magic.startswith(_ZIP_MAGIC):
        raise DataError(f"csv file {path} is a zip archive (as an .npz or an .xlsx file is), not CSV text; "
                        "use type: npz for numpy arrays, or save a spreadsheet as CSV")


def _holds_npy_arrays(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return bool(names) and all(name.endswith(".npy") for name in names)


def _read_array(archive: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    try:
        value = archive[name]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(f"npz file {path}: array {name!r} holds Python objects, which would need unpickling; "
                        "nnframe does not unpickle data files. Save numbers, e.g. "
                        f"np.savez(path, {name}=np.asarray({name}, dtype=float))") from None
    except MemoryError as exc:
        raise DataError(f"npz file {path}: array {name!r} does not fit in memory ({exc}); if the file is "
                        "smaller than that, its header is corrupt") from None
    if not isinstance(value, np.ndarray):
        raise DataError(f"npz file {path} is corrupt: its member {name!r} is not a .npy array; "
                        "write the file with np.savez(path, x=x, y=y)")
    return value


