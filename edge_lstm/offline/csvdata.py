"""Load a timestamped CSV of sensor readings, with one clear error per problem.

Used by ``edge-lstm evaluate`` and the demo. Times are ISO 8601 (``2024-01-01T00:00``,
``2024-01-01 00:00:00+02:00``, ``...Z``) or epoch seconds; a time without a zone is taken as UTC.
An empty cell (or ``nan``, ``NA``) is a missing reading: that sensor simply has no reading at
that time, which the resampler later treats as a gap. Anything else that is not a finite number
is an error naming the line and column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import EdgeLstmError
from ..stream.timestamps import parse_timestamp

_MISSING = frozenset({"", "nan", "na", "n/a", "null", "none"})


class DataError(EdgeLstmError):
    """A CSV file that cannot be used: missing, a missing column, a bad time or value, too short."""


@dataclass(frozen=True)
class Series:
    """Readings of several columns at shared times; ``values[i, j]`` is NaN when missing."""

    times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    columns: tuple[str, ...]
    source: str

    @property
    def rows(self) -> int:
        return int(self.times.shape[0])

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One column's values (NaN where missing)."""
        return self.values[:, self.columns.index(name)]


def load_csv(
    path: Path,
    columns: Sequence[str] | None = None,
    time_column: str = "time",
) -> Series:
    """Read ``path``; ``columns`` default to every column but the time column."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file (expected a header line)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
        if time_column not in header:
            raise DataError(
                f"{path}: no time column {time_column!r} (columns: {', '.join(header)}); "
                "name it with --time-column"
            )
        wanted = list(columns) if columns else [h for h in header if h != time_column]
        if not wanted:
            raise DataError(f"{path}: no value columns besides {time_column!r}")
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(
                f"{path}: column {missing[0]!r} not found (columns: {', '.join(header)})"
            )
        t_index = header.index(time_column)
        indices = [header.index(c) for c in wanted]
        times: list[float] = []
        rows: list[list[float]] = []
        try:
            for line_no, record in enumerate(reader, start=2):
                if not record or all(not cell.strip() for cell in record):
                    continue
                if len(record) < len(header):
                    raise DataError(
                        f"{path}: line {line_no} has {len(record)} fields, header has {len(header)}"
                    )
                try:
                    times.append(parse_timestamp(record[t_index]))
                except ValueError:
                    raise DataError(
                        f"{path}: line {line_no}: cannot parse time {record[t_index]!r} "
                        "(expected ISO 8601 or epoch seconds)"
                    ) from None
                rows.append(
                    [_cell(path, line_no, wanted[k], record[i]) for k, i in enumerate(indices)]
                )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    if not times:
        raise DataError(f"{path}: no data rows")
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(rows, dtype=np.float64).reshape(len(times), len(wanted))
    # Replays must run forward in time; a shuffled file is sorted rather than rejected.
    order = np.argsort(t, kind="stable")
    return Series(times=t[order], values=v[order], columns=tuple(wanted), source=str(path))


def _cell(path: Path, line_no: int, column: str, text: str) -> float:
    cell = text.strip()
    if cell.lower() in _MISSING:
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise DataError(
            f"{path}: line {line_no}, column {column!r}: {cell!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{path}: line {line_no}, column {column!r}: {cell!r} is not finite")
    return value
