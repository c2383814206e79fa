"""Bring-your-own training code: HistGradientBoostingRegressor on the channels tarn exported."""

import json
import os
import traceback

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error

TARGET = "arr_delay"


def main():
    with open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json")) as f:
        hp = json.load(f)  # values are strings, as SageMaker passes them
    train = pd.read_parquet(os.environ["SM_CHANNEL_TRAIN"])
    valid = pd.read_parquet(os.environ["SM_CHANNEL_VALIDATION"])
    x, y = train.drop(columns=[TARGET]).astype("float64"), train[TARGET]
    vx, vy = valid.drop(columns=[TARGET]).astype("float64"), valid[TARGET]
    model = HistGradientBoostingRegressor(
        learning_rate=float(hp.get("learning_rate", 0.1)),
        max_iter=int(hp.get("max_iter", 100)),
        early_stopping=False,
    )
    model.fit(x, y)
    pred = model.predict(vx)
    rmse = mean_squared_error(vy, pred) ** 0.5
    # tarn reads this line with the metric definition in train.yml ...
    print(f"validation rmse: {rmse:.6f}")
    # ... and this goes straight into the run tarn opened (MLFLOW_RUN_ID).
    mlflow.log_metric("mae", mean_absolute_error(vy, pred))
    mlflow.sklearn.save_model(
        model,
        os.environ["SM_MODEL_DIR"],
        input_example=vx.head(5),
        # mlflow 3 saves with skops, which asks to name the types a model may load.
        skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
    )


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # SageMaker's convention: the failure reason goes to output/failure.
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write(traceback.format_exc())
        raise
