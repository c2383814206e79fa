"""The seed's example lambda: reads its input, says which way the choice goes."""
import json

from lake_utils import describe


def handler(event, context):
    print("lambda", context.function_name, "got", json.dumps(event, sort_keys=True))
    print(describe(event))
    return {**event, "example": "value1" if event["key2"].endswith(".json") else "other"}
