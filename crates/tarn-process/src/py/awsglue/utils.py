"""getResolvedOptions as AWS Glue has it: `--KEY VALUE` (or `--KEY=VALUE`) arguments by name."""


class GlueArgumentError(Exception):
    pass


def getResolvedOptions(args, options):
    parsed = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            key = a[2:]
            if "=" in key:
                k, v = key.split("=", 1)
                parsed[k] = v
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                parsed[key] = args[i + 1]
                i += 1
            else:
                parsed[key] = ""
        i += 1
    missing = [o for o in options if o not in parsed]
    if missing:
        raise GlueArgumentError(
            "the following arguments are required: " + ", ".join("--" + m for m in missing)
        )
    return {o: parsed[o] for o in options}
