"""One broad run of the mlflow client against the server MLFLOW_TRACKING_URI names.

The parity test runs it against `mlflow server` and against `tarn serve`, each on a fresh
store, and compares the two outputs call by call. Every call records what a user would look
at (values, names, counts, error codes), never ids or times, so the two runs are comparable.
Prints one JSON object: call name -> result.
"""
import json
import math
import os
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

URI = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
client = MlflowClient()
out = {}


def num(v):
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return v


def call(name):
    """Records what `fn` answers under `name`, or the error code it raised."""

    def wrap(fn):
        try:
            out[name] = fn()
        except MlflowException as e:
            out[name] = {"error": e.error_code}
        except Exception as e:  # noqa: BLE001 - a difference to report, not to hide
            out[name] = {"exception": type(e).__name__, "message": str(e)[:200]}
        return fn

    return wrap


def raw(method, path, **kw):
    r = requests.request(method, URI + path, timeout=30, **kw)
    try:
        body = r.json()
    except ValueError:
        body = {}
    return {"status": r.status_code, "error_code": body.get("error_code")}


# --- experiments: create, paging, GET search, filters -------------------------------------
names = [f"parity-{c}" for c in "abcde"]
exp_ids = {n: client.create_experiment(n, tags={"team": "ml", "letter": n[-1]}) for n in names}
exp = exp_ids["parity-a"]


@call("experiments_paged")
def _():
    pages, token = [], None
    while True:
        page = client.search_experiments(max_results=2, page_token=token, order_by=["name ASC"])
        pages.append([e.name for e in page])
        token = page.token
        if not token:
            return pages


@call("experiments_get_search")
def _():
    r = requests.get(URI + "/api/2.0/mlflow/experiments/search", params={"max_results": 3}, timeout=30)
    return {"status": r.status_code, "count": len(r.json().get("experiments", []))}


@call("experiments_filtered")
def _():
    found = client.search_experiments(
        filter_string="name LIKE 'parity-%' AND tags.letter != 'c'", order_by=["name DESC"]
    )
    return [e.name for e in found]


@call("experiment_by_name")
def _():
    e = client.get_experiment_by_name("parity-b")
    return {"name": e.name, "tags": {k: v for k, v in e.tags.items() if not k.startswith("mlflow.")}}


@call("experiment_missing")
def _():
    return client.get_experiment_by_name("no-such-experiment")


# --- NaN and infinities -------------------------------------------------------------------
mlflow.set_experiment(experiment_id=exp)
with mlflow.start_run(run_name="odd-values") as run:
    odd = run.info.run_id
    mlflow.log_metric("loss", float("nan"))
    mlflow.log_metric("big", float("inf"))
    mlflow.log_metric("small", float("-inf"))
    mlflow.log_metrics({"ok": 1.5, "batch_nan": float("nan")})


@call("nan_inf_get_run")
def _():
    return {k: num(v) for k, v in sorted(client.get_run(odd).data.metrics.items())}


@call("nan_inf_history")
def _():
    return {
        k: [num(m.value) for m in client.get_metric_history(odd, k)]
        for k in ["loss", "big", "small", "batch_nan"]
    }


with mlflow.start_run(run_name="low"):
    mlflow.log_metric("loss", 0.5)
with mlflow.start_run(run_name="high"):
    mlflow.log_metric("loss", 2.0)
with mlflow.start_run(run_name="none"):
    mlflow.log_metric("other", 1.0)


def run_names(**kw):
    return [r.info.run_name for r in client.search_runs([exp], **kw)]


@call("nan_filters")
def _():
    return {
        f: sorted(run_names(filter_string=f))
        for f in ["metrics.loss > 0", "metrics.loss != 0.5", "metrics.loss = 0", "metrics.big > 1e300"]
    }


@call("nan_order")
def _():
    return {
        d: run_names(order_by=[f"metrics.loss {d}"]) for d in ["ASC", "DESC"]
    }


# --- duplicate metric points, sklearn models, logged-model metrics ------------------------
from sklearn.linear_model import LinearRegression  # noqa: E402

X = np.arange(40, dtype=float).reshape(20, 2)
y = X[:, 0] * 2 + X[:, 1]
model = LinearRegression().fit(X, y)
with mlflow.start_run(run_name="dupes") as run:
    dupes = run.info.run_id
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
    client.log_batch(
        dupes,
        metrics=[
            mlflow.entities.Metric("loss", 1.0, 1_700_000_000_000, 0),
            mlflow.entities.Metric("loss", 1.0, 1_700_000_000_000, 0),
        ],
    )
    info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    model_id = info.model_id
    mlflow.log_metric("r2", 0.99, model_id=model_id)
    mlflow.log_metric("rmse", 0.1, model_id=model_id, step=1)
    second = mlflow.sklearn.log_model(model, name="second").model_id


@call("duplicate_points")
def _():
    return [(m.step, m.value) for m in client.get_metric_history(dupes, "loss")]


@call("logged_model")
def _():
    m = client.get_logged_model(model_id)
    return {
        "name": m.name,
        "status": str(m.status),
        "metrics": sorted((x.key, x.value, x.step) for x in m.metrics or []),
        "params": m.params,
    }


@call("second_logged_model")
def _():
    return sorted((x.key, x.value, x.step) for x in client.get_logged_model(second).metrics or [])


@call("logged_model_search_metrics")
def _():
    found = mlflow.search_logged_models(
        experiment_ids=[exp], filter_string="metrics.r2 > 0.5", output_format="list"
    )
    return [m.name for m in found]


@call("model_loads_back")
def _():
    loaded = mlflow.pyfunc.load_model(f"models:/{model_id}")
    return [round(float(v), 6) for v in loaded.predict(X[:3])]


@call("run_outputs")
def _():
    r = client.get_run(dupes)
    return len(r.outputs.model_outputs) if r.outputs else 0


# --- search: IN, datasets, IS NULL, paging ------------------------------------------------
df = pd.DataFrame({"carrier": ["AA", "UA", "DL"], "delay": [1.0, 2.0, 3.0]})
with mlflow.start_run(run_name="with-data") as run:
    with_data = run.info.run_id
    mlflow.log_input(mlflow.data.from_pandas(df, name="flights"), context="training")
    mlflow.log_param("alpha", "0.5")
    mlflow.log_table(df, artifact_file="delays.json")


@call("search_in")
def _():
    ids = [odd, dupes]
    return {
        "in": sorted(run_names(filter_string=f"attributes.run_id IN ('{ids[0]}', '{ids[1]}')")),
        "not_in": sorted(run_names(filter_string=f"attributes.run_id NOT IN ('{ids[0]}', '{ids[1]}')")),
    }


@call("search_datasets")
def _():
    return {
        f: run_names(filter_string=f)
        for f in [
            "datasets.name = 'flights'",
            "datasets.context = 'training'",
            "datasets.name IN ('flights', 'other')",
            "datasets.name LIKE 'fl%'",
        ]
    }


@call("search_is_null")
def _():
    return {
        "null": len(run_names(filter_string="params.alpha IS NULL")),
        "not_null": run_names(filter_string="params.alpha IS NOT NULL"),
    }


@call("search_runs_paged")
def _():
    pages, token = [], None
    while True:
        page = client.search_runs([exp], max_results=3, page_token=token, order_by=["attributes.run_name ASC"])
        pages.append([r.info.run_name for r in page])
        token = page.token
        if not token:
            return pages


@call("load_table")
def _():
    t = mlflow.load_table("delays.json", run_ids=[with_data])
    return sorted(t["carrier"].tolist())


@call("run_inputs")
def _():
    r = client.get_run(with_data)
    return [(d.dataset.name, [t.value for t in d.tags]) for d in r.inputs.dataset_inputs]


@call("bad_filter")
def _():
    return run_names(filter_string="metrics.loss LIKE 'x'")


# --- validation and limits ----------------------------------------------------------------
with mlflow.start_run(run_name="limits") as run:
    limits = run.info.run_id


def code_of(fn):
    try:
        fn()
        return "accepted"
    except MlflowException as e:
        return e.error_code


@call("long_values")
def _():
    client.log_param(limits, "long", "p" * 7000)
    client.set_tag(limits, "long", "t" * 9000)
    r = client.get_run(limits)
    return {"param": len(r.data.params["long"]), "tag": len(r.data.tags["long"])}


@call("bad_keys")
def _():
    return {
        k: code_of(lambda k=k: client.log_param(limits, k, "v"))
        for k in ["k" * 300, "bad key!@#", "../etc", "a/../b", "ok key/with.dots-and_ok", "/abs"]
    }


@call("bad_metric_keys")
def _():
    return {k: code_of(lambda k=k: client.log_metric(limits, k, 1.0)) for k in ["a/../b", "x" * 251]}


@call("changed_param")
def _():
    client.log_param(limits, "fixed", "1")
    return code_of(lambda: client.log_param(limits, "fixed", "2"))


@call("runs_search_too_many")
def _():
    return raw("POST", "/api/2.0/mlflow/runs/search", json={"experiment_ids": [exp], "max_results": 60000})


@call("runs_get_without_id")
def _():
    return raw("GET", "/api/2.0/mlflow/runs/get")


@call("runs_get_unknown")
def _():
    return raw("GET", "/api/2.0/mlflow/runs/get", params={"run_id": "0" * 32})


@call("experiment_get_without_id")
def _():
    return raw("GET", "/api/2.0/mlflow/experiments/get")


@call("experiment_duplicate")
def _():
    return code_of(lambda: client.create_experiment("parity-a"))


@call("deleted_run_log")
def _():
    with mlflow.start_run(run_name="doomed") as r:
        pass
    client.delete_run(r.info.run_id)
    return code_of(lambda: client.log_metric(r.info.run_id, "x", 1.0))


@call("batch_limits")
def _():
    many = [mlflow.entities.Metric(f"m{i}", 1.0, 0, 0) for i in range(1001)]
    dup = [mlflow.entities.Param("p", "1"), mlflow.entities.Param("p", "2")]
    return {
        "metrics": code_of(lambda: client.log_batch(limits, metrics=many)),
        "duplicate_params": code_of(lambda: client.log_batch(limits, params=dup)),
        "long_experiment_name": code_of(lambda: client.create_experiment("e" * 600)),
    }


# --- run and experiment lifecycles --------------------------------------------------------
@call("nested_runs")
def _():
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child", nested=True):
            mlflow.log_metric("depth", 1)
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return [r.info.run_name for r in children]


@call("run_lifecycle")
def _():
    r = client.create_run(exp, run_name="manual", tags={"kind": "manual"})
    rid = r.info.run_id
    client.update_run(rid, name="renamed")
    client.set_terminated(rid, status="FAILED")
    got = client.get_run(rid)
    client.delete_run(rid)
    deleted = [x.info.run_name for x in client.search_runs([exp], run_view_type=2)]
    client.restore_run(rid)
    client.delete_tag(rid, "kind")
    after = client.get_run(rid)
    return {
        "name": got.info.run_name,
        "status": got.info.status,
        "deleted_view": deleted,
        "restored": after.info.lifecycle_stage,
        "tags": sorted(k for k in after.data.tags if not k.startswith("mlflow.")),
        "missing_tag": code_of(lambda: client.delete_tag(rid, "kind")),
    }


@call("experiment_lifecycle")
def _():
    e = client.create_experiment("parity-doomed")
    client.set_experiment_tag(e, "note", "x")
    client.delete_experiment_tag(e, "note")
    client.rename_experiment(e, "parity-doomed-2")
    client.delete_experiment(e)
    deleted = [x.name for x in client.search_experiments(view_type=2)]
    run_in_deleted = code_of(lambda: client.create_run(e))
    client.restore_experiment(e)
    return {
        "deleted": deleted,
        "run_in_deleted": run_in_deleted,
        "restored": client.get_experiment(e).lifecycle_stage,
        "tags": sorted(k for k in client.get_experiment(e).tags if not k.startswith("mlflow.")),
        "default_delete": code_of(lambda: client.delete_experiment("0")),
    }


@call("search_runs_pandas")
def _():
    frame = mlflow.search_runs(experiment_ids=[exp], filter_string="attributes.run_name = 'odd-values'")
    cols = sorted(c for c in frame.columns if c.startswith("metrics."))
    return {"columns": cols, "nan": int(frame["metrics.loss"].isna().sum())}


@call("async_logging")
def _():
    with mlflow.start_run(run_name="async") as r:
        mlflow.log_metrics({"a": 1.0, "b": 2.0}, synchronous=False).wait()
        mlflow.log_params({"x": "1"}, synchronous=False).wait()
    got = client.get_run(r.info.run_id)
    return {"metrics": got.data.metrics, "params": got.data.params}


# --- registry -----------------------------------------------------------------------------
@call("registry")
def _():
    client.create_registered_model("parity-model", tags={"owner": "ml"}, description="d")
    v1 = client.create_model_version("parity-model", f"models:/{model_id}", run_id=dupes, model_id=model_id)
    client.set_registered_model_alias("parity-model", "champion", v1.version)
    by_alias = client.get_model_version_by_alias("parity-model", "champion")
    client.delete_registered_model_alias("parity-model", "champion")
    return {
        "version": v1.version,
        "by_alias": by_alias.version,
        "after_delete": code_of(lambda: client.get_model_version_by_alias("parity-model", "champion")),
        "loads": [round(float(v), 6) for v in mlflow.pyfunc.load_model("models:/parity-model/1").predict(X[:2])],
    }


@call("version_source_without_model_id")
def _():
    return code_of(lambda: client.create_model_version("parity-model", f"models:/{model_id}"))


@call("registry_paged")
def _():
    for n in ["parity-m2", "parity-m3"]:
        client.create_registered_model(n)
    pages, token = [], None
    while True:
        page = client.search_registered_models(max_results=2, page_token=token, order_by=["name ASC"])
        pages.append([m.name for m in page])
        token = page.token
        if not token:
            return pages


@call("model_versions_search")
def _():
    return [(v.name, v.version) for v in client.search_model_versions("name = 'parity-model'")]


@call("bad_model_names")
def _():
    return {n: code_of(lambda n=n: client.create_registered_model(n)) for n in ["a/b", "m:1", "ok-name"]}


@call("bad_dataset")
def _():
    from mlflow.entities import Dataset, DatasetInput, InputTag

    def log(name, digest, context):
        d = Dataset(name=name, digest=digest, source_type="code", source="{}")
        client.log_inputs(limits, [DatasetInput(d, [InputTag("mlflow.data.context", context)])])

    return {
        "long_name": code_of(lambda: log("n" * 501, "abc", "training")),
        "long_digest": code_of(lambda: log("flights", "d" * 37, "training")),
        "long_context": code_of(lambda: log("flights", "abc", "c" * 501)),
        "fine": code_of(lambda: log("flights", "abc", "training")),
    }


@call("registered_model_missing")
def _():
    return code_of(lambda: client.get_registered_model("no-such-model"))


@call("registry_lifecycle")
def _():
    v2 = client.create_model_version("parity-model", f"models:/{model_id}", model_id=model_id, tags={"k": "v"})
    client.update_model_version("parity-model", v2.version, description="second")
    client.set_model_version_tag("parity-model", v2.version, "checked", "yes")
    moved = client.transition_model_version_stage("parity-model", v2.version, "Staging")
    latest = client.get_latest_versions("parity-model", stages=["Staging"])
    tagged = client.search_model_versions("name = 'parity-model' AND tag.checked = 'yes'")
    client.delete_model_version_tag("parity-model", v2.version, "checked")
    client.rename_registered_model("parity-m3", "parity-m4")
    client.delete_registered_model("parity-m4")
    client.delete_model_version("parity-model", v2.version)
    return {
        "stage": moved.current_stage,
        "latest": [v.version for v in latest],
        "tagged": [v.version for v in tagged],
        "description": client.get_registered_model("parity-model").description,
        "after_delete": [v.version for v in client.search_model_versions("name = 'parity-model'")],
        "renamed_gone": code_of(lambda: client.get_registered_model("parity-m3")),
        "bad_stage": code_of(lambda: client.transition_model_version_stage("parity-model", "1", "Nope")),
    }


@call("logged_models_lifecycle")
def _():
    with mlflow.start_run(run_name="more-models"):
        names = []
        for n in ["m-a", "m-b", "m-c"]:
            mlflow.sklearn.log_model(model, name=n)
            names.append(n)
    found = mlflow.search_logged_models(
        experiment_ids=[exp], order_by=[{"field_name": "name", "ascending": True}], output_format="list"
    )
    page = client.search_logged_models(experiment_ids=[exp], max_results=2)
    m = found[0]
    client.set_logged_model_tags(m.model_id, {"reviewed": "yes"})
    tagged = client.get_logged_model(m.model_id).tags.get("reviewed")
    client.delete_logged_model_tag(m.model_id, "reviewed")
    client.delete_logged_model(found[-1].model_id)
    left = mlflow.search_logged_models(experiment_ids=[exp], output_format="list")
    return {
        "ordered": [x.name for x in found],
        "first_page": len(page),
        "has_token": bool(page.token),
        "tagged": tagged,
        "after_delete": len(left),
        "filtered": [x.name for x in mlflow.search_logged_models(experiment_ids=[exp], filter_string="name = 'm-b'", output_format="list")],
    }


# --- tracing ------------------------------------------------------------------------------
@mlflow.trace(name="add", span_type="TOOL")
def add(a, b):
    return a + b


@mlflow.trace(name="pipeline")
def pipeline(x):
    with mlflow.start_span(name="prepare", span_type="PARSER") as span:
        span.set_inputs({"x": x})
        span.set_outputs({"y": x * 2})
    return add(x * 2, 1)


@call("trace_call")
def _():
    return pipeline(3)


trace_id = mlflow.get_last_active_trace_id()


def trace_view(t):
    return {
        "state": str(t.info.state),
        "name": t.info.tags.get("mlflow.traceName"),
        "spans": sorted(
            (s.name, str(s.span_type), json.dumps(s.inputs, sort_keys=True), json.dumps(s.outputs, sort_keys=True))
            for s in t.data.spans
        ),
        "request": t.info.request_preview,
        "response": t.info.response_preview,
    }


@call("get_trace")
def _():
    return trace_view(mlflow.get_trace(trace_id))


@call("trace_tags")
def _():
    client.set_trace_tag(trace_id, "env", "test")
    t = mlflow.get_trace(trace_id)
    before = t.info.tags.get("env")
    client.delete_trace_tag(trace_id, "env")
    return {"before": before, "after": mlflow.get_trace(trace_id).info.tags.get("env")}


@call("search_traces")
def _():
    pipeline(5)
    found = mlflow.search_traces(locations=[exp], return_type="list")
    ordered = mlflow.search_traces(locations=[exp], return_type="list", order_by=["timestamp_ms ASC"])
    filtered = mlflow.search_traces(
        locations=[exp], filter_string="trace.status = 'OK'", return_type="list"
    )
    named = mlflow.search_traces(locations=[exp], filter_string="trace.name = 'pipeline'", return_type="list")
    return {
        "count": len(found),
        "first_response": ordered[0].info.response_preview,
        "ok": len(filtered),
        "named": len(named),
        "spans": sorted(len(t.data.spans) for t in found),
    }


@call("trace_feedback")
def _():
    mlflow.log_feedback(trace_id=trace_id, name="quality", value=True, rationale="fine")
    mlflow.log_expectation(trace_id=trace_id, name="expected", value=7)
    t = mlflow.get_trace(trace_id)
    return sorted((a.name, json.dumps(a.value)) for a in t.info.assessments)


@call("trace_links")
def _():
    pipeline(9)
    tid = mlflow.get_last_active_trace_id()
    with mlflow.start_run(run_name="linked") as r:
        pass
    client.link_traces_to_run([tid], r.info.run_id)
    found = mlflow.search_traces(locations=[exp], run_id=r.info.run_id, return_type="list")
    mlflow.genai.register_prompt(name="linked-prompt", template="Q: {{q}}")
    client.link_prompt_versions_to_trace([mlflow.genai.load_prompt("prompts:/linked-prompt/1")], tid)
    return {
        "by_run": [t.info.response_preview for t in found],
        "unknown_run": code_of(lambda: client.link_traces_to_run([tid], "0" * 32)),
        "unknown_trace": code_of(lambda: client.link_traces_to_run(["tr-" + "1" * 32], r.info.run_id)),
    }


@call("trace_missing")
def _():
    return mlflow.get_trace("tr-" + "0" * 32)


@call("delete_traces")
def _():
    return client.delete_traces(experiment_id=exp, trace_ids=[trace_id])


@call("search_traces_after_delete")
def _():
    return len(mlflow.search_traces(locations=[exp], return_type="list"))


# --- autolog, artifacts, prompts, evaluate ------------------------------------------------
@call("autolog")
def _():
    mlflow.sklearn.autolog(log_models=False, log_datasets=False)
    with mlflow.start_run(run_name="auto") as r:
        LinearRegression().fit(X, y)
    mlflow.sklearn.autolog(disable=True)
    got = client.get_run(r.info.run_id)
    return {"params": sorted(got.data.params), "metrics": sorted(got.data.metrics)}


@call("artifacts")
def _():
    with mlflow.start_run(run_name="files") as r:
        mlflow.log_text("hello", "notes/a.txt")
        mlflow.log_dict({"k": 1}, "conf.json")
    listed = sorted((a.path, a.is_dir) for a in client.list_artifacts(r.info.run_id))
    text = mlflow.artifacts.load_text(f"runs:/{r.info.run_id}/notes/a.txt")
    return {"listed": listed, "text": text}


@call("prompts")
def _():
    mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}!", commit_message="first")
    p = mlflow.genai.load_prompt("prompts:/greeting/1")
    return {"text": p.format(name="tarn"), "version": p.version}


@call("prompt_aliases")
def _():
    mlflow.genai.register_prompt(name="greeting", template="Hi {{name}}.", commit_message="second")
    mlflow.genai.set_prompt_alias("greeting", alias="prod", version=1)
    by_alias = mlflow.genai.load_prompt("prompts:/greeting@prod")
    latest = mlflow.genai.load_prompt("prompts:/greeting@latest")
    found = mlflow.genai.search_prompts()
    return {
        "alias": by_alias.format(name="x"),
        "latest": latest.format(name="x"),
        "found": sorted(p.name for p in found),
        "not_a_model": [m.name for m in client.search_registered_models(filter_string="name = 'greeting'")],
    }


@call("evaluate")
def _():
    data = pd.DataFrame(X, columns=["a", "b"])
    data["target"] = y
    with mlflow.start_run(run_name="eval"):
        result = mlflow.models.evaluate(
            f"models:/{model_id}", data, targets="target", model_type="regressor", evaluators=["default"]
        )
    return sorted(k for k in result.metrics if not k.startswith("example"))


print(json.dumps(out, sort_keys=True, default=str))
