"""Runs when a step of daily_flights fails, before the `failures` topic is told."""


def handler(event, context):
    print(f"daily_flights failed at {event['step']}: {event['error']}")
    print(f"see: {event['logs']}")
    return event
