"""What the benches share: writing one section of bench/RESULTS.md (leaving the others as
they are), their common arguments, and finding a port and waiting for a server on it."""
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(title, section):
    """Replaces the section starting with `title` (a `## ` heading), or appends it."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    start = text.find(title)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + section + ("" if end < 0 else text[end:])
    RESULTS.write_text(text if text.endswith("\n") else text + "\n")


def arguments(doc):
    """A parser with what every bench takes: `--tarn PATH` (the release binary) and
    `--no-write` (print the section only)."""
    import argparse
    import os

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    target = os.environ.get("CARGO_TARGET_DIR", str(root / "target"))
    ap.add_argument("--tarn", default=os.path.join(target, "release", "tarn"))
    ap.add_argument("--no-write", action="store_true")
    return ap


def publish(args, title, lines):
    """Prints the section and writes it into RESULTS.md (unless `--no-write`)."""
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(title, section)


def free_port():
    """A loopback port nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, seconds=120):
    """Returns once `url` answers 200; exits naming it after `seconds`."""
    import time
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered")
