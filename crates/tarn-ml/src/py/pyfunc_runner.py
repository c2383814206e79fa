"""tarn's batch scorer for MLflow models: loads the model with mlflow.pyfunc, then for each
line `INPUT.parquet<TAB>OUTPUT.parquet` on stdin scores the rows and answers `ok` (or the
error) on stdout. Anything the model prints goes to stderr, so the protocol stays clean."""

import os
import sys

answers = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

try:
    import mlflow.pyfunc  # noqa: E402

    model = mlflow.pyfunc.load_model(sys.argv[1])
except Exception as e:  # the reason goes back to tarn
    answers.write(f"{type(e).__name__}: {e}".replace("\n", " ") + "\n")
    sys.exit(1)
answers.write("ready\n")


def conform(df):
    """Lake columns cast to the types the model's signature asks (an int64 column for a
    double input, as SQL often answers), so mlflow's schema check accepts them."""
    try:
        from mlflow.types import DataType

        schema = model.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            return df
        numeric = {DataType.double: "float64", DataType.float: "float32", DataType.long: "int64", DataType.integer: "int32"}
        for spec in schema.inputs:
            want = numeric.get(getattr(spec, "type", None))
            if want and spec.name in df.columns and str(df[spec.name].dtype) != want:
                df[spec.name] = df[spec.name].astype(want)
    except Exception:
        pass
    return df


def frame(pred):
    if isinstance(pred, pd.DataFrame):
        out = pred.reset_index(drop=True)
        if out.shape[1] == 1:
            out.columns = ["prediction"]
        return out
    if isinstance(pred, pd.Series):
        return pd.DataFrame({"prediction": pred.to_numpy()})
    if isinstance(pred, dict):
        return frame(next(iter(pred.values()))) if len(pred) == 1 else pd.DataFrame(
            {k: np.asarray(v).ravel() for k, v in pred.items()}
        )
    arr = np.asarray(pred)
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
        return pd.DataFrame({"prediction": arr.ravel()})
    return pd.DataFrame({f"prediction_{i}": arr[:, i] for i in range(arr.shape[1])})


for line in sys.stdin:
    src, dst = line.rstrip("\n").split("\t")
    try:
        df = pd.read_parquet(src)
        frame(model.predict(conform(df))).to_parquet(dst, index=False)
        answers.write("ok\n")
    except Exception as e:
        answers.write(f"{type(e).__name__}: {e}".replace("\n", " ") + "\n")
