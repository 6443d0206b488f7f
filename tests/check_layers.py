#!/usr/bin/env python3
"""Fails when a file under cpp/ includes a project header from a folder its layer may not use.

The allowed edges live in cpp/layers.txt (one line per folder: `folder: allowed folders`); its
`bindings` line lists what python/*.cpp may include (folders, or single headers). Usage:
python3 tests/check_layers.py [repo root]"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def load_layers(path: pathlib.Path) -> dict[str, set[str]]:
    layers = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, deps = line.partition(":")
        layers[name.strip()] = set(deps.split()) | {name.strip()}
    return layers


def violations(root: pathlib.Path) -> list[str]:
    cpp = root / "cpp"
    layers = load_layers(cpp / "layers.txt")
    bad = []
    for f in sorted(cpp.rglob("*")):
        if f.suffix not in (".h", ".cpp") or f.parent == cpp:
            continue
        folder = f.relative_to(cpp).parts[0]
        if folder not in layers:
            bad.append(f"{f.relative_to(root)}: folder '{folder}' is not listed in cpp/layers.txt")
            continue
        for target in INCLUDE.findall(f.read_text(errors="replace")):
            dep = target.split("/", 1)[0] if "/" in target else None
            if dep is None or not (cpp / dep).is_dir():
                continue  # system or same-folder-relative header
            if dep not in layers[folder]:
                bad.append(f"{f.relative_to(root)}: includes \"{target}\", but {folder}/ may use only "
                           f"{', '.join(sorted(layers[folder] - {folder})) or 'nothing else'} (cpp/layers.txt)")
    allowed = layers.get("bindings", set())
    for f in sorted((root / "python").glob("*.cpp")):
        for target in INCLUDE.findall(f.read_text(errors="replace")):
            dep = target.split("/", 1)[0] if "/" in target else None
            if dep is None or not (cpp / dep).is_dir():
                continue
            if dep not in allowed and target not in allowed:
                bad.append(f"{f.relative_to(root)}: includes \"{target}\", but the bindings may use only "
                           f"{', '.join(sorted(allowed - {'bindings'}))} (cpp/layers.txt)")
    stray = [p for p in cpp.iterdir() if p.suffix in (".h", ".cpp")]
    bad += [f"{p.relative_to(root)}: sources belong in a layer folder" for p in stray]
    return bad


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
    bad = violations(root)
    for line in bad:
        print(line)
    print(f"layer check: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
