"""A shared module, compiled with the modules that list it in shared_modules."""


def describe(event):
    return "object {} of {}".format(event.get("key2"), event.get("key1"))
