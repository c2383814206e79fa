"""The mlflow client, unchanged, against tarn serve (MLFLOW_TRACKING_URI is set by the test).

Prints one JSON line with what a data scientist would look at afterwards.
"""
import json
import os
import tempfile

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

mlflow.set_experiment("flight-delays")
with mlflow.start_run(run_name="baseline") as run:
    mlflow.log_param("model", "mean")
    mlflow.log_params({"features": "carrier,origin", "window": 7})
    for step, rmse in enumerate([30.5, 25.25, 21.0]):
        mlflow.log_metric("rmse", rmse, step=step)
    mlflow.log_metrics({"mae": 12.5, "r2": 0.41})
    mlflow.set_tags({"team": "ml-platform", "stage": "dev"})
    work = tempfile.mkdtemp()
    with open(os.path.join(work, "notes.txt"), "w") as f:
        f.write("baseline: the mean delay per carrier\n")
    os.makedirs(os.path.join(work, "plots", "by_month"))
    with open(os.path.join(work, "plots", "by_month", "jan.csv"), "wb") as f:
        f.write(bytes(range(256)) * 4096)  # 1 MiB of every byte value
    mlflow.log_artifact(os.path.join(work, "notes.txt"))
    mlflow.log_artifacts(os.path.join(work, "plots"), artifact_path="plots")
    baseline = run.info.run_id
with mlflow.start_run(run_name="tree") as run:
    mlflow.log_params({"model": "tree", "depth": 6})
    mlflow.log_metric("rmse", 18.75)
    mlflow.set_tag("team", "ml-platform")
    tree = run.info.run_id

client = MlflowClient()
changed = None
try:
    client.log_param(baseline, "model", "median")
except MlflowException as e:
    changed = e.error_code

got = client.get_run(baseline)
exp = mlflow.get_experiment_by_name("flight-delays")
best = mlflow.search_runs(
    experiment_names=["flight-delays"],
    filter_string="metrics.rmse < 20 AND params.model = 'tree' AND tags.team LIKE 'ml-%'",
    output_format="list",
)
ordered = mlflow.search_runs(
    experiment_ids=[exp.experiment_id], order_by=["metrics.rmse ASC"], output_format="list"
)
history = client.get_metric_history(baseline, "rmse")
missing = None
try:
    client.get_run("0" * 32)
except MlflowException as e:
    missing = e.error_code
top = sorted((a.path, a.is_dir) for a in client.list_artifacts(baseline))
deep = [(a.path, a.file_size) for a in client.list_artifacts(baseline, "plots/by_month")]
back = mlflow.artifacts.download_artifacts(run_id=baseline, artifact_path="plots")
with open(os.path.join(back, "by_month", "jan.csv"), "rb") as f:
    same_bytes = f.read() == bytes(range(256)) * 4096
with open(mlflow.artifacts.download_artifacts(run_id=baseline, artifact_path="notes.txt")) as f:
    notes = f.read()

# Deleting and restoring, renaming, tags of experiments and runs.
client.delete_run(tree)
after_delete = [r.info.run_name for r in mlflow.search_runs(
    experiment_ids=[exp.experiment_id], output_format="list")]
client.restore_run(tree)
client.set_tag(baseline, "temporary", "yes")
client.delete_tag(baseline, "temporary")
client.set_experiment_tag(exp.experiment_id, "owner", "data-team")
client.rename_experiment(exp.experiment_id, "flight-delays-v2")
client.rename_experiment(exp.experiment_id, "flight-delays")
client.delete_experiment(exp.experiment_id)
deleted_stage = client.get_experiment(exp.experiment_id).lifecycle_stage
client.restore_experiment(exp.experiment_id)
exp = client.get_experiment(exp.experiment_id)
mlflow.set_experiment("flight-cancellations")
mlflow.set_experiment("weather")
found = [e.name for e in mlflow.search_experiments(
    filter_string="name LIKE 'flight%'", order_by=["name DESC"])]
by_tag = [e.name for e in mlflow.search_experiments(filter_string="tags.owner = 'data-team'")]

print(json.dumps({
    "found": found,
    "by_tag": by_tag,
    "artifacts": top,
    "deep": deep,
    "same_bytes": same_bytes,
    "notes": notes,
    "after_delete": after_delete,
    "deleted_stage": deleted_stage,
    "experiment_tags": exp.tags,
    "experiment": exp.name,
    "status": got.info.status,
    "params": got.data.params,
    "metrics": got.data.metrics,
    "tags": {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")},
    "run_name": got.info.run_name,
    "best": [r.info.run_id == tree for r in best],
    "ordered": [r.info.run_name for r in ordered],
    "history": [[m.step, m.value] for m in history],
    "changed_param": changed,
    "missing_run": missing,
}))
