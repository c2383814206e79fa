"""What the training tests check from Python: built-in models against scikit-learn and
onnxruntime on the very rows tarn exported, and a registered model loaded with mlflow."""

import json
import os
import sys

import numpy as np
import pandas as pd


def metrics(kind, y, p):
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    if kind == "regression":
        return {"rmse": float(mean_squared_error(y, p) ** 0.5)}
    return {
        "auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, (p >= 0.5).astype(int))),
    }


def compare(jobs):
    """For each (algorithm, job folder): scikit-learn's equivalent estimator fitted on the
    job's train channel and the job's ONNX model run by onnxruntime, both judged on its
    validation channel."""
    import onnxruntime as ort
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for algorithm, target, job_dir in jobs:
        data = os.path.join(job_dir, "input", "data")
        train = pd.read_parquet(os.path.join(data, "train"))
        valid = pd.read_parquet(os.path.join(data, "validation"))
        train = train[train[target].notna()]
        valid = valid[valid[target].notna()]
        x, y = train.drop(columns=[target]).astype("float64"), train[target]
        vx, vy = valid.drop(columns=[target]).astype("float64"), valid[target]
        kind = "classification" if algorithm in ("logistic_regression", "gbt_classifier") else "regression"
        with open(os.path.join(job_dir, "input", "config", "hyperparameters.json")) as f:
            iterations = int(float(json.load(f).get("max_iter", 100)))
        hgb = dict(max_iter=iterations, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=20, early_stopping=False)
        est = {
            "linear_regression": make_pipeline(SimpleImputer(), LinearRegression()),
            "logistic_regression": make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
            "gbt_regressor": HistGradientBoostingRegressor(**hgb),
            "gbt_classifier": HistGradientBoostingClassifier(**hgb),
        }[algorithm]
        est.fit(x, y)
        sk = est.predict_proba(vx)[:, 1] if kind == "classification" else est.predict(vx)
        session = ort.InferenceSession(os.path.join(job_dir, "model", "model.onnx"), providers=["CPUExecutionProvider"])
        feeds = {i.name: vx[i.name].to_numpy(dtype=np.float32) for i in session.get_inputs()}
        got = session.run(None, feeds)
        onnx_pred = got[1][:, 1] if kind == "classification" else got[0][:, 0]
        out[algorithm] = {
            "sklearn": metrics(kind, vy, sk),
            "onnxruntime": metrics(kind, vy, onnx_pred),
            "inputs": [i.name for i in session.get_inputs()],
        }
        if algorithm.startswith("gbt"):
            # LightGBM with the same nominal parameters, its defaults otherwise (deterministic:
            # its threads otherwise sum histograms in varying order, moving RMSE by about 0.1).
            import lightgbm

            gbm = (lightgbm.LGBMClassifier if kind == "classification" else lightgbm.LGBMRegressor)(
                n_estimators=iterations, learning_rate=0.1, num_leaves=31, min_child_samples=20, max_bin=255, verbose=-1,
                deterministic=True, force_col_wise=True,
            )
            gbm.fit(x, y)
            lg = gbm.predict_proba(vx)[:, 1] if kind == "classification" else gbm.predict(vx)
            out[algorithm]["lightgbm"] = metrics(kind, vy, lg)
        if kind == "classification":
            labels = got[0]
            out[algorithm]["labels_agree"] = bool(np.all(labels == (onnx_pred >= 0.5).astype(np.int64)))
    print(json.dumps(out))


def load(name, version):
    """The registered version through the mlflow client: its run, tags, and predictions."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    v = client.get_model_version(name, version)
    run = client.get_run(v.run_id)
    valid = pd.read_parquet(os.path.join(run.data.tags["tarn.job_dir"], "input", "data", "validation"))
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    pred = np.asarray(model.predict(valid.drop(columns=["arr_delay"]).astype("float64"))).ravel()
    rmse = float(np.sqrt(np.mean((pred - valid["arr_delay"].to_numpy()) ** 2)))
    print(json.dumps({
        "status": run.info.status,
        "metrics": run.data.metrics,
        "params": run.data.params,
        "trainer": run.data.tags.get("tarn.trainer"),
        "version_tags": sorted(k for k in v.tags if k.startswith("tarn.")),
        "lineage": json.loads(v.tags["tarn.lineage"]),
        "rows": len(pred),
        "rmse": rmse,
    }))


if __name__ == "__main__":
    if sys.argv[1] == "compare":
        compare(json.loads(sys.argv[2]))
    else:
        load(sys.argv[2], sys.argv[3])
