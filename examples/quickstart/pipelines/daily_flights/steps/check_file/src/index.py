"""Checks a landed day of flights: the header tarn's contract expects, one day only.

The input is tarn's summary of the landing (zone, key, size, ...); the output adds the day,
which the SQL step that follows uses to pick that day's rows. `tarn_zones` (tarn's runtime)
reads the object from the zone's folder or its S3 bucket alike.
"""
import csv
import io
import os

import tarn_zones

EXPECTED = {"year", "month", "day", "carrier", "flight", "sched_dep_time", "air_time"}


def handler(event, context):
    text = tarn_zones.read_text(os.environ["TARN_ORIGIN_ZONE"], event["key"])
    with io.StringIO(text, newline="") as f:
        rows = csv.DictReader(f)
        missing = EXPECTED - set(rows.fieldnames or [])
        if missing:
            raise ValueError(f"{event['key']} lacks the columns {sorted(missing)}")
        days = {(r["year"], r["month"], r["day"]) for r in rows}
    if len(days) != 1:
        raise ValueError(f"{event['key']} holds {len(days)} days; land one file per day")
    year, month, day = days.pop()
    print(f"{event['key']}: flights of {year}-{int(month):02}-{int(day):02}")
    return {**event, "year": int(year), "month": int(month), "day": int(day)}
