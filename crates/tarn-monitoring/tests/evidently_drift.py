"""Evidently 0.7.23's drift figures for nycflights13, the reference tarn's drift is checked
against (crates/tarn-monitoring/tests/evidently.rs runs it).

usage: evidently_drift.py FLIGHTS_CSV  ->  a JSON list on stdout, one entry per
(setup, column, method): Evidently's score (ValueDrift's value), the method it ran, and its
drift decision (get_one_column_drift, the function ValueDrift calls).
"""

import json
import os
import sys
import warnings

os.environ.setdefault("DO_NOT_TRACK", "1")
warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.legacy.calculations.data_drift import get_one_column_drift  # noqa: E402
from evidently.legacy.core import ColumnType  # noqa: E402
from evidently.legacy.options.data_drift import DataDriftOptions  # noqa: E402
from evidently.legacy.metric_results import DatasetColumns, DatasetUtilityColumns  # noqa: E402
from evidently.metrics import ValueDrift  # noqa: E402

NUMERIC = ["dep_delay", "arr_delay", "air_time", "distance", "hour", "dep_time"]
CATEGORICAL = ["carrier", "origin", "dest", "tailnum", "late"]
NUMERIC_METHODS = ["auto", "ks", "wasserstein", "jensenshannon", "psi", "hellinger"]
CATEGORICAL_METHODS = ["auto", "chisquare", "z", "jensenshannon", "psi", "hellinger"]
DISPLAY = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Hellinger distance": "hellinger",
}


def setups(df):
    """The same cuts as the Rust side: halves of the year, and a 500-row reference."""
    first = df[df.month <= 6].drop(columns="month").reset_index(drop=True)
    second = df[df.month > 6].drop(columns="month").reset_index(drop=True)
    yield "halves", first, second
    yield "small", first.head(500), second
    yield "small_exact", first.head(500), second.head(1200)


def main(path):
    df = pd.read_csv(path, usecols=NUMERIC + CATEGORICAL[:-1] + ["month"])
    df["late"] = df.arr_delay.gt(15).astype(object).where(df.arr_delay.notna(), None)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    out = []
    for setup, ref, cur in setups(df):
        plan = [(c, m, ColumnType.Numerical) for c in NUMERIC for m in NUMERIC_METHODS]
        plan += [(c, m, ColumnType.Categorical) for c in CATEGORICAL for m in CATEGORICAL_METHODS]
        metrics = [ValueDrift(column=c, method=None if m == "auto" else m) for c, m, _ in plan]
        snapshot = Report(metrics).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
        results = snapshot.dict()["metrics"]
        for (column, method, kind), result in zip(plan, results):
            assert result["config"]["column"] == column, (result, column)
            ran = DISPLAY.get(result["config"]["method"], result["config"]["method"])
            columns = DatasetColumns(
                utility_columns=DatasetUtilityColumns(date=None, id=None, target=None, prediction=None),
                target_type=None,
                task=None,
                num_feature_names=[column] if kind == ColumnType.Numerical else [],
                cat_feature_names=[column] if kind == ColumnType.Categorical else [],
                text_feature_names=[],
                datetime_feature_names=[],
            )
            legacy = get_one_column_drift(
                current_data=cur,
                reference_data=ref,
                column_name=column,
                options=DataDriftOptions(all_features_stattest=None if method == "auto" else method),
                dataset_columns=columns,
                column_type=kind,
                agg_data=True,
            )
            out.append(
                {
                    "setup": setup,
                    "column": column,
                    "method": method,
                    "ran": ran,
                    "score": float(result["value"]),
                    "legacy_score": float(legacy.drift_score),
                    "drifted": bool(legacy.drift_detected),
                    "threshold": float(result["config"]["threshold"]),
                }
            )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
