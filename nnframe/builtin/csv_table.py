"""A CSV file read as a table of numbers, with the line, the column and the fix named for a cell that is none.

A plain table of finite numbers goes through numpy's parser; anything else
through the row-by-row reader, which names the line and column at fault and
says what fits the cell: a missing value, a decimal comma, a text label, a
column of words. Blank lines are skipped, before the header too.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnframe.builtin.file_messages import missing_message, unreadable
from nnframe.errors import DataError

if TYPE_CHECKING:
    from nnframe.builtin.datasets import CsvParams


def read_csv_table(path: Path, params: CsvParams) -> tuple[list[str], np.ndarray]:
    """The header and every cell as float64, without the columns ``params.drop`` names."""
    nul = _holds_nul(path)  # numpy reads "1\0" as 1, in its parser and in its strings: float() names the cell
    fast = None if nul else _numeric_table(path, params.delimiter, params.drop)
    if fast is not None:
        header, values = fast
        _check_columns(header, params, path)
        kept = [i for i, name in enumerate(header) if name not in params.drop]
        return [header[i] for i in kept], values[:, kept]
    header, rows, lines = _read_csv(path, params)
    header, rows = _without_columns(header, rows, params.drop)
    return header, _to_numbers(rows, lines, header, path, params, by_cell=nul)


class RowLines:
    """``line 154``: the line of the file that data row ``i`` ends on, as a :class:`~nnframe.data.Dataset`'s
    ``row_origin`` (``line 12 of /data/val.csv`` with ``name_file``). The file is read again, up to that row and
    holding none of it, only when a message names a row; ``""`` where it can no longer be read so far."""

    def __init__(self, path: Path, delimiter: str, name_file: bool = False) -> None:
        self.path, self.delimiter, self.name_file = path, delimiter, name_file

    def __call__(self, row: int) -> str:
        line = self._line_of(row)
        if line is None:
            return ""
        return f"line {line} of {self.path}" if self.name_file else f"line {line}"

    def _line_of(self, row: int) -> int | None:
        if row < 0:
            return None
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as file:
                reader = csv.reader(file, delimiter=self.delimiter)
                if not _header(reader):
                    return None
                for cells in reader:
                    if not _blank(cells):
                        if row == 0:
                            return reader.line_num
                        row -= 1
        except (OSError, UnicodeDecodeError, csv.Error):
            return None
        return None


def read_header(path: Path, delimiter: str) -> list[str]:
    """The header row's names, or ``[]`` where the file has none or cannot be read as text (the table's reader
    then says why)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            return _header(csv.reader(file, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


MISSING_TOKENS = frozenset({"na", "n/a", "n.a.", "#n/a", "#na", "nan", "null", "none", "nil", "missing", "?", "-",
                            "--"})
"""Cells, compared in lower case, that spreadsheets and pandas write for a missing value."""


_SEPARATED_NUMBER = re.compile(r"[+-]?(\d{1,3}([.,]\d{3})+([.,]\d+)?|\d+,\d+)")
"""A number written with thousands separators (``1,000``, ``1.000,5``) or a decimal comma (``2,5``)."""


def _numeric_table(path: Path, delimiter: str, drop: Iterable[str] = ()) -> tuple[list[str], np.ndarray] | None:
    """The header and every cell as float64, read by numpy's parser, where the file is a plain table of finite
    numbers besides the columns ``drop`` names (read as 0); else ``None``, and the row-by-row reader, which names
    the line and column at fault, reads it.

    The row-by-row reader holds every cell as a Python string: 15 bytes of
    memory for each byte of a 46 MB file, against the array's size here. A
    text column to drop (an id) sent a 200,000-row file there: 2.5-3.2 s and
    587 MB, where numpy's parser takes 0.25 s and 110 MB.
    """
    dropped = set(drop)
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            header = _header(csv.reader(file, delimiter=delimiter))
            ignored = {i: _ignored for i, name in enumerate(header) if name in dropped}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty table is the other reader's to name
                values = np.loadtxt(file, delimiter=delimiter, dtype=np.float64, ndmin=2, quotechar='"', comments=None,
                                    converters=ignored or None)
    except (ValueError, OSError, UnicodeDecodeError, csv.Error, StopIteration):
        return None
    if not header or values.shape[0] == 0 or values.shape[1] != len(header) or not np.isfinite(values).all():
        return None
    _check_header(header, path)
    return header, values


def _holds_nul(path: Path, chunk: int = 1 << 20) -> bool:
    """Whether the file has a NUL byte, read a chunk at a time."""
    with path.open("rb") as file:
        return any(b"\0" in block for block in iter(lambda: file.read(chunk), b""))


def _ignored(cell: str) -> float:
    """A cell of a column to drop, which need not hold a number: read as 0 by numpy's parser."""
    return 0.0


def _check_columns(header: list[str], params: CsvParams, path: Path) -> None:
    """The label column and the ``drop`` columns, each in the header."""
    if params.label not in header:
        missing = f"csv file {path} has no label column {params.label!r}"
        hint = _comment_hint(header) or _delimiter_hint(header, params.delimiter)
        raise DataError(f"{missing}; the header is {params.delimiter.join(header)!r}{hint}" if hint else
                        missing_message(missing, params.label, header, "columns") + _no_header_hint(header)
                        + "; data.label names the label column")
    for name in params.drop:
        if name not in header:
            raise DataError(missing_message(f"csv file {path} has no column {name!r} to drop", name, header,
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
    ended = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=params.delimiter)
            header = _header(reader)
            if not header:
                raise DataError(f"csv file {path} is empty; it needs a header row naming the columns")
            _check_header(header, path)
            _check_columns(header, params, path)
            rows, lines = [], []
            ended = reader.line_num  # the line the last row read ended on
            for row in reader:
                started, ended = ended + 1, reader.line_num
                if _blank(row):
                    continue
                if len(row) != len(header):
                    comment = _comment_hint(header)
                    raise DataError(f"csv file {path}, {_lines(started, ended)}: {len(row)} cells, but the header "
                                    f"has {len(header)} columns"
                                    + (f"; the header is {params.delimiter.join(header)!r}{comment}" if comment
                                       else ""))
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise DataError(f"csv file {path} {_not_utf8(path)}") from None
    except csv.Error as exc:
        if "field limit" in str(exc):
            raise DataError(f"csv file {path}: a cell from line {ended + 1} on runs past {csv.field_size_limit()} "
                            "characters: a '\"' that opens a quoted cell there, or before, is never closed (or "
                            "the cell is that long)") from None
        raise DataError(f"csv file {path}: {exc}") from None
    except OSError as exc:
        raise unreadable("csv", path, exc) from None
    return header, rows, lines


LINE_BREAK = re.compile(rb"\r\n|\r|\n")
"""What ends a line for the csv reader: Excel's "CSV (Macintosh)" ends them with a carriage return alone."""
UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _not_utf8(path: Path) -> str:
    """Where the file stops being UTF-8: its line and the byte there, or that it is UTF-16 (Excel's "Unicode
    Text"). Python's decoder counts its position within the chunk it was given, not the file."""
    try:
        raw = path.read_bytes()
    except OSError:
        return "is not UTF-8 text"
    if raw.startswith(UTF16_MARKS):
        return "is UTF-16 text (as Excel saves \"Unicode Text\"); save it as \"CSV UTF-8\""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(LINE_BREAK.findall(raw, 0, exc.start)) + 1
        return (f"is not UTF-8 text: line {line} holds the byte 0x{raw[exc.start]:02X} (at byte {exc.start} of the "
                "file); save it as UTF-8")
    return "is not UTF-8 text"


def _lines(started: int, ended: int) -> str:
    """``line 12``, or, for a row a quoted cell carried over several lines, where it started and ended."""
    if started >= ended:
        return f"line {ended}"
    return f"the row of lines {started}-{ended} (a '\"' opened there is closed only on line {ended}, or never)"


def _header(reader: Iterable[list[str]]) -> list[str]:
    """The first non-blank row of a ``csv.reader``, its names stripped and in Unicode's composed form (see
    :func:`column_name`); ``[]`` where every line is blank."""
    for row in reader:
        if not _blank(row):
            return [column_name(name) for name in row]
    return []


def column_name(name: str) -> str:
    """``name`` stripped, its letters composed (NFC): ``Espèce`` typed, and written decomposed by a Mac, match."""
    return unicodedata.normalize("NFC", name.strip())


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


EXCEL_SEPARATOR_LINE = re.compile(r"sep=(.?)", re.IGNORECASE)
"""A first line ``sep=;`` that Excel writes to name the delimiter, which is no header (split by that delimiter,
``sep=`` and an empty cell)."""


def _check_header(header: list[str], path: Path) -> None:
    excel = EXCEL_SEPARATOR_LINE.fullmatch("".join(header)) if len(header) <= 2 else None
    if excel:
        named = excel.group(1)
        then = f" and set delimiter: {json.dumps(named)}" if named else ""
        raise DataError(f"csv file {path}: its first line is Excel's note of the delimiter, not a header: delete "
                        f"that line{then}")
    seen: set[str] = set()
    for column, name in enumerate(header, start=1):
        if not name:
            pandas = " (pandas writes its index there: save with to_csv(index=False))" if column == 1 else ""
            raise DataError(f"csv file {path}: header column {column} has no name{pandas}")
        if name in seen:
            raise DataError(f"csv file {path}: the header names column {name!r} twice{_no_header_hint(header)}")
        seen.add(name)


def _to_numbers(rows: list[list[str]], lines: list[int], header: list[str], path: Path,
                params: CsvParams, by_cell: bool = False) -> np.ndarray:
    """All cells as float64; a cell that is not a number is reported with its line and column. ``by_cell`` reads
    each with ``float()`` at once."""
    if not rows:
        raise DataError(f"csv file {path} has a header but no data rows")
    values = None if by_cell else _all_at_once(rows)
    if values is None:
        values = np.array([_row_numbers(row, line, header, path, params) for row, line in zip(rows, lines)])
    finite = np.isfinite(values)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise DataError(f"csv file {path}, line {lines[row]}, column {header[column]!r}: {rows[row][column]!r} is "
                        "a missing or infinite value; every cell must be a finite number (fill the missing values, "
                        "or leave out their rows)")
    return values


def _all_at_once(rows: list[list[str]]) -> np.ndarray | None:
    """Every cell as float64 through numpy's strings, fast; None where one is no number."""
    try:
        return np.array(rows, dtype=np.str_).astype(np.float64)
    except ValueError:
        return None


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
