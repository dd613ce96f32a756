"""Extract hourly dry-bulb temperature of three NREL TMY sites shipped with pvlib into one CSV.

Usage: ``python scripts/extract_data.py [--out data/tmy_hourly_temperature.csv]`` (needs pvlib,
which is *not* a runtime dependency of edge-lstm; only this script uses it).

A TMY ("typical meteorological year") file stitches 12 real months taken from different years. We
keep each reading's real time of day, convert local standard time to UTC, and coerce every
timestamp onto the single calendar year 2019 (not a leap year, like TMY). The few hours that UTC
conversion pushes past 31 December wrap round to 1 January, so every column covers the same 8760
UTC hours. The real source year of each month is listed in ``data/README.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pvlib
from pvlib.iotools import read_tmy2, read_tmy3

DATA_DIR = Path(pvlib.__file__).parent / "data"
SITES = {
    "greensboro": ("723170TYA.CSV", "tmy3"),
    "sand_point": ("703165TY.csv", "tmy3"),
    "miami": ("12839.tm2", "tmy2"),
}
YEAR = 2019


def site_series(filename: str, kind: str) -> tuple[pd.Series, dict[int, int]]:
    """Hourly dry-bulb temperature (deg C) on the UTC hours of ``YEAR``, and month -> real year."""
    path = DATA_DIR / filename
    if kind == "tmy3":
        df, _ = read_tmy3(str(path), map_variables=True)
        temp = df["temp_air"].astype(float)
    else:
        df, _ = read_tmy2(str(path))
        # TMY2 stores dry-bulb in tenths of a degree C; its index year is the first month's, so
        # the real source year of each month comes from the two-digit "year" column.
        temp = df["DryBulb"].astype(float) / 10.0
    source_years = _source_years(df, kind)
    local = temp.index
    # Coerce to one year: keep month/day/time of day, drop the TMY source year (a month may come
    # from a leap year, so day-of-year arithmetic would be off by one), then convert to UTC.
    naive = pd.to_datetime(
        {
            "year": YEAR,
            "month": local.month,
            "day": local.day,
            "hour": local.hour,
            "minute": local.minute,
        }
    )
    # pvlib turns TMY's "24:00" of 31 December into 1 January of the next year: that is YEAR too.
    index = pd.DatetimeIndex(naive).tz_localize(local.tz).tz_convert("UTC")
    # Wrap the hours that UTC conversion moved across New Year back into YEAR.
    wrapped = [ts - pd.DateOffset(years=ts.year - YEAR) if ts.year != YEAR else ts for ts in index]
    index = pd.DatetimeIndex(wrapped)
    series = pd.Series(temp.to_numpy(), index=index).sort_index()
    if series.index.has_duplicates or len(series) != 8760:
        raise SystemExit(f"{filename}: expected 8760 distinct hours, got {len(series)}")
    return series, source_years


def _source_years(df: pd.DataFrame, kind: str) -> dict[int, int]:
    """Month -> the real year it was recorded in (the most common year among its rows).

    The mode, not the first row: pvlib turns a month's closing "24:00" into 00:00 of the next
    month while keeping the earlier month's year.
    """
    if kind == "tmy2":
        years = df.groupby(df["month"].astype(int))["year"].agg(lambda s: s.mode().iloc[0])
        return {int(m): 1900 + int(y) for m, y in years.items()}
    index = pd.Series(df.index.year, index=df.index.month)
    modes = index.groupby(level=0).agg(lambda s: s.mode().iloc[0])
    return {int(m): int(y) for m, y in modes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/tmy_hourly_temperature.csv"))
    args = parser.parse_args()
    columns: dict[str, pd.Series] = {}
    for name, (filename, kind) in SITES.items():
        series, years = site_series(filename, kind)
        columns[name] = series
        print(f"{name}: {filename}, months from years {years}")
    frame = pd.DataFrame(columns)
    expected = pd.date_range(f"{YEAR}-01-01", periods=8760, freq="h", tz="UTC")
    if not frame.index.equals(expected) or frame.isna().any().any():
        raise SystemExit("sites do not cover the same 8760 UTC hours")
    if not np.isfinite(frame.to_numpy()).all():
        raise SystemExit("non-finite temperature in the source data")
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.index.name = "time"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, float_format="%.1f")
    print(f"wrote {args.out}: {len(frame)} rows, columns {list(frame.columns)}")


if __name__ == "__main__":
    main()
