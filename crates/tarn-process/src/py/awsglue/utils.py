"""getResolvedOptions as Glue's: `--KEY VALUE` arguments by name."""


class GlueArgumentError(Exception):
    pass


def getResolvedOptions(args, options):
    """The values of `--NAME VALUE` (or `--NAME=VALUE`) in `args` for each of `options`."""
    found = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            key = a[2:]
            if "=" in key:
                key, value = key.split("=", 1)
                found[key] = value
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                found[key] = args[i + 1]
                i += 1
            else:
                found[key] = ""
        i += 1
    out = {}
    missing = []
    for name in options:
        if name in found:
            out[name] = found[name]
        elif name.replace("_", "-") in found:
            out[name] = found[name.replace("_", "-")]
        else:
            missing.append(name)
    if missing:
        raise GlueArgumentError(
            "the following arguments are required: " + ", ".join("--" + m for m in missing)
        )
    for key in ("job_bookmark_option", "job-bookmark-option"):
        if key in found:
            out["job_bookmark_option"] = found[key]
    return out
