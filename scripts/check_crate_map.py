"""Checks that README.md's crate map names every crate of the workspace with the tarn crates
it depends on, as their Cargo.toml files declare them (run by scripts/test)."""
import glob, os, re, sys

root = os.path.join(os.path.dirname(__file__), "..")
readme = open(os.path.join(root, "README.md")).read()
mapped = {}
for line in readme.splitlines():
    m = re.match(r"^\| `(tarn(?:-[a-z]+)?)` \| .* \| ([^|]*) \|$", line)
    if m:
        deps = m.group(2).strip()
        mapped[m.group(1)] = set() if deps == "none" else {
            d.strip() if d.strip() == "tarn" else "tarn-" + d.strip() for d in deps.split(",")
        }
problems = []
for toml in sorted(glob.glob(os.path.join(root, "crates", "*", "Cargo.toml"))):
    name = os.path.basename(os.path.dirname(toml))
    text = open(toml).read()
    deps = text.split("[dependencies]", 1)[1].split("\n[", 1)[0] if "[dependencies]" in text else ""
    declared = set(re.findall(r"^(tarn-[a-z]+)", deps, re.M)) - {name}
    if name not in mapped:
        problems.append(f"README.md's crate map has no row for `{name}`")
    elif mapped[name] != declared:
        problems.append(
            f"README.md says `{name}` depends on {sorted(mapped[name]) or 'none'}; its Cargo.toml declares {sorted(declared) or 'none'}"
        )
for name in sorted(set(mapped) - {os.path.basename(os.path.dirname(t)) for t in glob.glob(os.path.join(root, "crates", "*", "Cargo.toml"))}):
    problems.append(f"README.md's crate map lists `{name}`, which is not a crate of the workspace")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"crate map: {len(mapped)} crates, every dependency edge as declared")
