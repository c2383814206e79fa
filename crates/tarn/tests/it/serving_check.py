"""Endpoint checks with the real tools: scikit-learn pipelines exported by skl2onnx (default
options), logged with the mlflow client, served by tarn, compared with onnxruntime and
scikit-learn; and the same request bodies sent to tarn and to `mlflow models serve`.

    serving_check.py register TRACKING_URL FLIGHTS_CSV WORKDIR
    serving_check.py compare TARN_URL WORKDIR
    serving_check.py statuses TARN_ENDPOINT_URL MLFLOW_URL
    serving_check.py download TRACKING_URL MODEL_URI DEST
    serving_check.py register-pyfunc TRACKING_URL FLIGHTS_CSV
"""

import json
import pickle
import sys
import urllib.request
import warnings

warnings.filterwarnings("ignore")

NUM = ["month", "day", "dep_delay", "distance", "hour"]
CAT = ["carrier", "origin"]


def kinds():
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.linear_model import LogisticRegression
    return {
        "logistic": (LogisticRegression(max_iter=1000), "late"),
        "logistic_multi": (LogisticRegression(max_iter=1000), "band"),
        "forest_classifier": (RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0), "late"),
        "forest_regressor": (RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0), "delay"),
        "boosting_classifier": (GradientBoostingClassifier(n_estimators=30, random_state=0), "late"),
        "boosting_multi": (GradientBoostingClassifier(n_estimators=20, random_state=0), "band"),
        "boosting_regressor": (GradientBoostingRegressor(n_estimators=30, random_state=0), "delay"),
    }


def register(url, csv, work):
    import mlflow
    import mlflow.onnx
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = pd.read_csv(csv, nrows=40000).dropna(subset=["arr_delay", "dep_delay"])
    for c in NUM:
        df[c] = df[c].astype("float32")
    train, test = df.iloc[:30000], df.iloc[30000:33000]
    targets = {
        "late": (train.arr_delay > 15).astype(int),
        "band": pd.cut(train.arr_delay, [-1e9, 0, 30, 1e9], labels=False),
        "delay": train.arr_delay,
    }
    X, T = train[NUM + CAT], test[NUM + CAT]
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("endpoint-checks")
    out = []
    expected = {}
    for kind, (model, target) in kinds().items():
        pre = ColumnTransformer([("num", StandardScaler(), NUM),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), CAT)])
        pipe = Pipeline([("pre", pre), ("model", model)]).fit(X, targets[target])
        onx = to_onnx(pipe, X[:1])
        name = f"skl_{kind}"
        with mlflow.start_run(run_name=kind):
            info = mlflow.onnx.log_model(onx, name="model", registered_model_name=name)
        version = str(info.registered_model_version)
        expected[kind] = {
            "sklearn": (pipe.predict_proba(T) if hasattr(pipe, "predict_proba") else pipe.predict(T)).tolist(),
            "sklearn_label": pipe.predict(T).tolist(),
            "onnxruntime": run_onnxruntime(onx, T),
        }
        out.append({"kind": kind, "model": name, "version": version})
    with open(f"{work}/expected.pkl", "wb") as f:
        pickle.dump({"test": T, "expected": expected}, f)
    print(json.dumps(out))


def register_pyfunc(url, csv):
    """A scikit-learn model logged with mlflow.sklearn (python_function, no ONNX): prints its
    version and what it predicts for the first rows."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    df = pd.read_csv(csv, nrows=5000).dropna(subset=["arr_delay", "dep_delay"])
    cols = ["dep_delay", "distance"]
    model = LinearRegression().fit(df[cols], df.arr_delay)
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("endpoint-checks")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="sk_linear",
                                        input_example=df[cols][:2])
    rows = df[cols][:3]
    print(json.dumps({"version": str(info.registered_model_version),
                      "rows": rows.to_dict(orient="records"),
                      "predictions": model.predict(rows).tolist()}))


def run_onnxruntime(onx, T):
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(onx.SerializeToString())
    feeds = {}
    for i in sess.get_inputs():
        dtype = {"tensor(float)": np.float32, "tensor(string)": object}[i.type]
        feeds[i.name] = T[i.name].to_numpy().reshape(-1, 1).astype(dtype)
    res = sess.run(None, feeds)
    if len(res) == 2:
        return {"label": res[0].tolist(), "proba": [[d[k] for k in sorted(d)] for d in res[1]]}
    return {"value": res[0].ravel().tolist()}


def post(url, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def compare(url, work):
    import numpy as np
    with open(f"{work}/expected.pkl", "rb") as f:
        saved = pickle.load(f)
    T, expected = saved["test"], saved["expected"]
    body = {"dataframe_split": {"columns": list(T.columns),
                                "data": [[float(v) if k in NUM else v for k, v in zip(T.columns, row)]
                                         for row in T.itertuples(index=False)]}}
    report = {}
    for kind, exp in expected.items():
        status, text = post(f"{url}/endpoints/skl_{kind}/invocations", body)
        if status != 200:
            report[kind] = {"status": status, "body": text.decode()[:500]}
            continue
        preds = json.loads(text)["predictions"]
        ort_ = exp["onnxruntime"]
        r = {"status": status, "rows": len(preds)}
        if "proba" in ort_:
            classes = sorted(preds[0]["output_probability"], key=lambda k: int(k))
            tarn_p = np.array([[p["output_probability"][k] for k in classes] for p in preds])
            tarn_l = np.array([p["output_label"] for p in preds])
            ort_p, sk_p = np.array(ort_["proba"]), np.array(exp["sklearn"])
            r["max_diff_onnxruntime"] = float(np.abs(tarn_p - ort_p).max())
            r["labels_equal_onnxruntime"] = bool((tarn_l == np.array(ort_["label"])).all())
            tarn_off = np.abs(tarn_p - sk_p).max(axis=1) > 1e-5
            ort_off = np.abs(ort_p - sk_p).max(axis=1) > 1e-5
        else:
            tarn_v = np.array([p["variable"] for p in preds])
            ort_v, sk_v = np.array(ort_["value"]), np.array(exp["sklearn"])
            scale = np.maximum(1.0, np.abs(sk_v))
            r["max_diff_onnxruntime"] = float((np.abs(tarn_v - ort_v) / np.maximum(1.0, np.abs(ort_v))).max())
            r["labels_equal_onnxruntime"] = True
            tarn_off = np.abs(tarn_v - sk_v) / scale > 1e-5
            ort_off = np.abs(ort_v - sk_v) / scale > 1e-5
        # Rows where tarn differs from scikit-learn, and whether onnxruntime differs on the
        # very same rows (float32 exports of forests round thresholds the same way for both).
        r["rows_off_sklearn"] = int(tarn_off.sum())
        r["same_rows_as_onnxruntime"] = bool((tarn_off == ort_off).all())
        report[kind] = r
    print(json.dumps(report))


def statuses(tarn, mlflow_url):
    row = {"dep_delay": 12.0, "distance": 1400.0, "hour": 7.0, "minute": 5.0, "day": 3.0}
    cols = list(row)
    bodies = [
        ("split", {"dataframe_split": {"columns": cols, "data": [list(row.values())]}}, "application/json"),
        ("records", {"dataframe_records": [row, row]}, "application/json"),
        ("instances", {"instances": [row]}, "application/json"),
        ("inputs", {"inputs": {k: [v] for k, v in row.items()}}, "application/json"),
        ("csv", ",".join(cols) + "\n" + ",".join(str(v) for v in row.values()) + "\n", "text/csv"),
        ("charset", {"dataframe_records": [row]}, "application/json; charset=utf-8"),
        ("extra column", {"dataframe_records": [dict(row, extra=1.0)]}, "application/json"),
        ("missing column", {"dataframe_records": [{k: v for k, v in row.items() if k != "distance"}]}, "application/json"),
        ("text in a number column", {"dataframe_records": [dict(row, distance="far")]}, "application/json"),
        ("two formats", {"dataframe_records": [row], "instances": [row]}, "application/json"),
        ("no format", {"data": [row]}, "application/json"),
        ("a list", [row], "application/json"),
        ("not json", "{nope", "application/json"),
        ("wrong media type", "x", "text/plain"),
        ("latin-1", {"dataframe_records": [row]}, "application/json; charset=latin-1"),
        ("unknown parameter", {"dataframe_records": [row]}, "application/json; format=pandas-split"),
        ("ragged split", {"dataframe_split": {"columns": cols, "data": [[1.0]]}}, "application/json"),
        ("records not a list", {"dataframe_records": row}, "application/json"),
    ]
    out = []
    for name, body, ct in bodies:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        t, tb = post(f"{tarn}/invocations", data, ct)
        m, mb = post(f"{mlflow_url}/invocations", data, ct)
        out.append({"case": name, "tarn": t, "mlflow": m,
                    "tarn_body": tb.decode()[:300], "mlflow_body": mb.decode()[:300]})
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "register":
        register(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "register-pyfunc":
        register_pyfunc(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "download":
        import mlflow
        mlflow.set_tracking_uri(sys.argv[2])
        print(json.dumps(mlflow.artifacts.download_artifacts(sys.argv[3], dst_path=sys.argv[4])))
    else:
        statuses(sys.argv[2], sys.argv[3])
