"""The built-in datasets, registered through the same hook a third-party plugin uses.

``spiral`` generates the book's three-armed spiral; ``npz`` and ``csv`` read
arrays from files, with relative paths resolved against the config's directory.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

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
MISSING_TOKENS = frozenset({"na", "n/a", "n.a.", "#n/a", "#na", "nan", "null", "none", "nil", "missing", "?", "-",
                            "--"})
"""Cells, compared in lower case, that spreadsheets and pandas write for a missing value."""
_SEPARATED_NUMBER = re.compile(r"[+-]?(\d{1,3}([.,]\d{3})+([.,]\d+)?|\d+,\d+)")
"""A number written with thousands separators (``1,000``, ``1.000,5``) or a decimal comma (``2,5``)."""


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
            raise DataError(_missing_message(f"npz file {path} has no array {name!r}", name, present, "arrays"))
    if "x_val" in arrays and "y_val" in arrays and params.val_fraction > 0:
        raise DataError(f"npz file {path} has its own validation set (x_val), and val_fraction is "
                        f"{params.val_fraction}; set val_fraction to 0 to use x_val, or save the file without it")
    return Dataset(arrays["x"], arrays["y"], arrays.get("x_val"), arrays.get("y_val"),
                   source=str(path), classification=params.task == "classification")


class CsvParams(FileParams):
    """A CSV file with a header row: one label column, every other column a numeric feature."""

    label: str = Field("label", description="name of the label (target) column")
    delimiter: str = Field(",", description="the one character between cells")
    drop: list[str] = Field(default_factory=list, description="columns that are neither features nor the label, "
                                                              "such as an id; left out")

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError(f"delimiter must be one character; found {value!r}")
        return value


def build_csv(params: CsvParams, ctx: DatasetContext) -> Dataset:
    """Features and a label column from a CSV file with a header row."""
    path = _resolve(params.path, ctx, "csv")
    _check_not_numpy(path)
    fast = _numeric_table(path, params.delimiter)
    if fast is not None:
        header, values = fast
        _check_columns(header, params, path)
        kept = [i for i, name in enumerate(header) if name not in params.drop]
        header, values = [header[i] for i in kept], values[:, kept]
    else:
        header, rows, lines = _read_csv(path, params)
        header, rows = _without_columns(header, rows, params.drop)
        values = _to_numbers(rows, lines, header, path, params)
    if len(header) < 2:
        raise DataError(f"csv file {path} has only the label column {params.label!r}; it needs feature columns")
    label = header.index(params.label)
    x = np.delete(values, label, axis=1)
    return Dataset(x, values[:, label], source=str(path), classification=params.task == "classification",
                   feature_names=[name for name in header if name != params.label])


def _numeric_table(path: Path, delimiter: str) -> tuple[list[str], np.ndarray] | None:
    """The header and every cell as float64, read by numpy's parser, where the file is a plain table of finite
    numbers; else ``None``, and the row-by-row reader, which names the line and column at fault, reads it.

    The row-by-row reader holds every cell as a Python string: 15 bytes of
    memory for each byte of a 46 MB file, against the array's size here.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            header = _header(csv.reader(file, delimiter=delimiter))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty table is the other reader's to name
                values = np.loadtxt(file, delimiter=delimiter, dtype=np.float64, ndmin=2, quotechar='"', comments=None)
    except (ValueError, OSError, UnicodeDecodeError, csv.Error, StopIteration):
        return None
    if not header or values.shape[0] == 0 or values.shape[1] != len(header) or not np.isfinite(values).all():
        return None
    _check_header(header, path)
    return header, values


def _check_columns(header: list[str], params: CsvParams, path: Path) -> None:
    """The label column and the ``drop`` columns, each in the header."""
    if params.label not in header:
        missing = f"csv file {path} has no label column {params.label!r}"
        hint = _comment_hint(header) or _delimiter_hint(header, params.delimiter)
        raise DataError(f"{missing}; the header is {params.delimiter.join(header)!r}{hint}" if hint else
                        _missing_message(missing, params.label, header, "columns") + _no_header_hint(header))
    for name in params.drop:
        if name not in header:
            raise DataError(_missing_message(f"csv file {path} has no column {name!r} to drop", name, header,
                                             "columns"))
        if name == params.label:
            raise DataError(f"csv file {path}: drop names the label column {name!r}")


def _without_columns(header: list[str], rows: list[list[str]],
                     drop: list[str]) -> tuple[list[str], list[list[str]]]:
    """The header and rows without the columns ``drop`` names, which need not hold numbers."""
    if not drop:
        return header, rows
    keep = [i for i, name in enumerate(header) if name not in drop]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


@hookimpl
def nnframe_register_datasets() -> list[Component]:
    return [
        dataset("spiral", SpiralParams, build_spiral, "the book's spiral: 2-D points on C arms"),
        dataset("npz", NpzParams, build_npz, "arrays x, y (, x_val, y_val) from a .npz file"),
        dataset("csv", CsvParams, build_csv, "a CSV file with a header row and a label column"),
    ]


def _resolve(path: str, ctx: DatasetContext, kind: str) -> Path:
    given = Path(path).expanduser()
    resolved = ctx.path(path)
    if resolved.is_file():
        return resolved
    where = "" if given.is_absolute() else f" (path {path!r} relative to {ctx.base_dir})"
    if resolved.is_dir():
        problem = "is a directory, not a file"
    elif resolved.is_symlink() and not resolved.exists():
        problem = "is a link that leads nowhere (to a missing file, or in a loop)"
    else:
        problem = "is not a regular file" if resolved.exists() else "not found"
    message = f"{kind} file {resolved}{where} {problem}"
    siblings = ([p.name for p in resolved.parent.iterdir() if p.is_file()]
                if resolved.parent.is_dir() and not resolved.exists() else [])
    raise DataError(message + did_you_mean(close_match(resolved.name, siblings)))


def _first_bytes(path: Path, kind: str) -> bytes:
    """The first bytes of a data file, enough for numpy's and zip's signatures."""
    try:
        with path.open("rb") as file:
            return file.read(6)
    except OSError as exc:
        raise _unreadable(kind, path, exc) from None


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


def _missing_message(message: str, name: str, present: list[str], what: str) -> str:
    message += f"; {what} present: {', '.join(present) if present else '(none)'}"
    return message + did_you_mean(close_match(name, present))


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    if len(header) != 1:
        return ""
    for other in ",;\t| ":
        if other != delimiter and other in header[0]:
            return f", one column: is the delimiter {other!r}? (set delimiter: {json.dumps(other)})"  # YAML reads "\t"
    return ""


def _read_csv(path: Path, params: CsvParams) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, non-blank rows and each row's line number; the header is checked against ``params`` before any
    row is read (a wrong delimiter is named as such), and row lengths against the header."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=params.delimiter)
            header = _header(reader)
            if not header:
                raise DataError(f"csv file {path} is empty; it needs a header row naming the columns")
            _check_header(header, path)
            _check_columns(header, params, path)
            rows, lines = [], []
            for row in reader:
                if _blank(row):
                    continue
                if len(row) != len(header):
                    comment = _comment_hint(header)
                    raise DataError(f"csv file {path}, line {reader.line_num}: {len(row)} cells, but the header "
                                    f"has {len(header)} columns"
                                    + (f"; the header is {params.delimiter.join(header)!r}{comment}" if comment
                                       else ""))
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataError(f"csv file {path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DataError(f"csv file {path}: {exc}") from None
    except OSError as exc:
        raise _unreadable("csv", path, exc) from None
    return header, rows, lines


def _header(reader: Iterable[list[str]]) -> list[str]:
    """The first non-blank row of a ``csv.reader``, its names stripped; ``[]`` where every line is blank."""
    for row in reader:
        if not _blank(row):
            return [name.strip() for name in row]
    return []


def _blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _comment_hint(header: list[str]) -> str:
    if not header[0].startswith("#"):
        return ""
    return (": the first line that is not blank is taken as the header row, and nnframe reads no comment lines; "
            "remove the lines starting with '#' above the header")


def _no_header_hint(header: list[str]) -> str:
    if not all(_is_number(name) for name in header):
        return ""
    return "; every name in the header is a number: the file seems to have no header row, and nnframe needs one"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unreadable(kind: str, path: Path, exc: OSError) -> DataError:
    """A data file the system refuses to read (EIO, EACCES): the input is at fault, not the disk of the run."""
    return DataError(f"{kind} file {path} cannot be read: {exc.strerror or exc}")


def _check_header(header: list[str], path: Path) -> None:
    seen: set[str] = set()
    for column, name in enumerate(header, start=1):
        if not name:
            pandas = " (pandas writes its index there: save with to_csv(index=False))" if column == 1 else ""
            raise DataError(f"csv file {path}: header column {column} has no name{pandas}")
        if name in seen:
            raise DataError(f"csv file {path}: the header names column {name!r} twice")
        seen.add(name)


def _to_numbers(rows: list[list[str]], lines: list[int], header: list[str], path: Path,
                params: CsvParams) -> np.ndarray:
    """All cells as float64; a cell that is not a number is reported with its line and column."""
    if not rows:
        raise DataError(f"csv file {path} has a header but no data rows")
    try:
        values = np.array(rows, dtype=np.str_).astype(np.float64)
    except ValueError:
        values = np.array([_row_numbers(row, line, header, path, params) for row, line in zip(rows, lines)])
    finite = np.isfinite(values)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise DataError(f"csv file {path}, line {lines[row]}, column {header[column]!r}: {rows[row][column]!r} is "
                        "a missing or infinite value; every cell must be a finite number (fill the missing values, "
                        "or leave out their rows)")
    return values


def _row_numbers(row: list[str], line: int, header: list[str], path: Path, params: CsvParams) -> list[float]:
    values = []
    for cell, column in zip(row, header):
        try:
            values.append(float(cell))
        except ValueError:
            raise DataError(f"csv file {path}, line {line}, column {column!r}: "
                            + _not_a_number(cell, column, params)) from None
    return values


def _not_a_number(cell: str, column: str, params: CsvParams) -> str:
    """What the cell is, said for the fix that fits it: a missing value, a decimal comma, a text label, a column
    of words."""
    word = cell.strip()
    if not word or word.lower() in MISSING_TOKENS:
        found = f"{cell!r} looks like" if word else "an empty cell is"
        return (f"{found} a missing value; every cell must be a finite number (fill the missing values, or leave "
                "out their rows)")
    if _SEPARATED_NUMBER.fullmatch(word):
        return f"{cell!r} is not a number: numbers must use '.' as the decimal point and no thousands separators"
    if column == params.label and params.task == "regression":
        return f"{cell!r} is not a number; the targets of a regression must be numbers"
    if column == params.label:
        return (f"{cell!r} is not a number; labels must be numbers, class indices 0..C-1 for C classes: string "
                "labels need encoding to integers first (nnframe does not encode them)")
    return (f"{cell!r} is not a number; every cell must be numeric (labels as class indices 0..C-1); a column that "
            f"is no feature, such as a name or an id, is left out with drop: [{column}]")
