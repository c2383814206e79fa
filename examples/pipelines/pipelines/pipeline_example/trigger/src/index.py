"""Receives the event as AWS delivers it and returns the pipeline's input (its contract)."""


def handler(event, context):
    if "Records" in event:  # an S3 event notification
        s3 = event["Records"][0]["s3"]
        return {"key1": s3["bucket"]["name"], "key2": s3["object"]["key"]}
    detail = event.get("detail", {})  # an EventBridge event
    return {"key1": str(detail.get("key1", event["source"])), "key2": str(detail.get("key2", ""))}
