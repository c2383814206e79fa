"""What the monitoring tests check from Python: a binary classifier's realised performance
per window as scikit-learn computes it, on the serving rows and actuals tarn exported."""

import json
import sys

import numpy as np
import pandas as pd


def binary(serving_csv, actuals_csv, rows_per_window):
    """Rows windows in time order (ties by the id as text, as tarn documents); each id's
    actual the one that is not missing; per window AUC, accuracy, F1 and log loss over the
    rows with both a probability and an actual, and CBPE's estimated accuracy over every
    row with a probability."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    serving = pd.read_csv(serving_csv, dtype={"id": str})
    serving["ts"] = pd.to_datetime(serving["ts"])
    serving = serving.sort_values(["ts", "id"], kind="stable").reset_index(drop=True)
    serving["window"] = serving.index // int(rows_per_window)
    actuals = pd.read_csv(actuals_csv, dtype={"id": str})
    actuals = actuals.dropna(subset=["late"]).drop_duplicates("id", keep="last")
    actuals["late"] = actuals["late"].map(lambda v: str(v).lower() in ("true", "1"))
    joined = serving.merge(actuals, on="id", how="left")
    out = []
    for w, rows in joined.groupby("window"):
        scored = rows.dropna(subset=["probability"])
        labelled = scored.dropna(subset=["late"])
        y = labelled["late"].astype(int).to_numpy()
        p = labelled["probability"].to_numpy()
        q = scored["probability"].to_numpy()
        out.append(
            {
                "window": int(w),
                "rows": int(len(rows)),
                "labelled": int(len(labelled)),
                "auc": float(roc_auc_score(y, p)),
                "accuracy": float(accuracy_score(y, (p >= 0.5).astype(int))),
                "f1": float(f1_score(y, (p >= 0.5).astype(int))),
                "log_loss": float(log_loss(y, p, labels=[0, 1])),
                "estimated_accuracy": float(np.where(q >= 0.5, q, 1 - q).mean()),
            }
        )
    return out


if __name__ == "__main__":
    print(json.dumps(binary(*sys.argv[2:]) if sys.argv[1] == "binary" else None))
