#!/usr/bin/env python3
"""Lays out what a Dockerfile's stages would see, without a container daemon.

    image_context.py DOCKERFILE CONTEXT OUT

Reads DOCKERFILE, finds the stage the final stage copies the binary from (`COPY --from=X`),
and copies, from CONTEXT (honouring CONTEXT/.dockerignore):

- into OUT/build: every file a `COPY` of that stage or of a stage it is built `FROM` takes
  from the context, at its path under the stage's WORKDIR;
- into OUT/runtime: every file the final stage's own `COPY` lines take from the context.

Prints the final stage's `ENV` settings as `KEY=VALUE` lines. Timestamps are kept, so a
cached target dir stays valid between runs. Nothing else is read from CONTEXT: a file the
Dockerfile forgets is missing here as it would be in the image.
"""

import fnmatch
import os
import shlex
import shutil
import sys


def logical_lines(text):
    """Dockerfile lines with `\\` continuations joined, comments and blanks dropped."""
    joined, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def parse_stages(text):
    """[{name, parent, workdir, copies: [(flags, sources, dest)], env: [(k, v)]}] in order."""
    stages = []
    for line in logical_lines(text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            names = {s["name"] for s in stages}
            parent = words[0] if words[0] in names else None
            inherited = next((s for s in stages if s["name"] == parent), None)
            stages.append({
                "name": name,
                "parent": parent,
                "workdir": inherited["workdir"] if inherited else "/",
                "copies": [],
                "env": [],
            })
        elif not stages:
            continue
        elif instruction == "WORKDIR":
            stages[-1]["workdir"] = os.path.join(stages[-1]["workdir"], rest.strip())
        elif instruction in ("COPY", "ADD"):
            if rest.lstrip().startswith("["):
                sys.exit(f"image_context: JSON-form {instruction} is not supported: {line}")
            words = shlex.split(rest)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            stages[-1]["copies"].append((flags, paths[:-1], paths[-1]))
        elif instruction == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                stages[-1]["env"].append((key, value))
    return stages


def chain(stages, name):
    """The stage called `name` and every stage it is built FROM, oldest first."""
    by_name = {s["name"]: s for s in stages}
    found = []
    while name is not None:
        stage = by_name.get(name)
        if stage is None:
            sys.exit(f"image_context: no stage named {name}")
        found.insert(0, stage)
        name = stage["parent"]
    return found


def ignored(relative, patterns):
    """Whether .dockerignore excludes `relative` (or a folder above it)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(p, pat) for pat in patterns for p in prefixes)


def copy_source(context, source, target, patterns):
    """Copies one context path to `target` as COPY does (a folder's contents, not itself)."""
    origin = os.path.join(context, source)
    if not os.path.exists(origin):
        sys.exit(f"image_context: COPY {source}: not in the build context")
    if os.path.isfile(origin):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(origin, target)
        return
    for root, dirs, files in os.walk(origin):
        relative_root = os.path.relpath(root, context)
        dirs[:] = [d for d in dirs if not ignored(os.path.normpath(os.path.join(relative_root, d)), patterns)]
        for file in files:
            relative = os.path.normpath(os.path.join(relative_root, file))
            if ignored(relative, patterns):
                continue
            destination = os.path.join(target, os.path.relpath(os.path.join(root, file), origin))
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.copy2(os.path.join(root, file), destination)


def lay_out(stages, context, out, patterns):
    """Copies each stage's context COPYs under out/<its WORKDIR>."""
    for stage in stages:
        for flags, sources, dest in stage["copies"]:
            if any(f.startswith("--from") for f in flags):
                continue
            base = os.path.normpath(os.path.join(stage["workdir"], dest)).lstrip("/")
            workdir = stage["workdir"].lstrip("/")
            into_folder = dest.endswith("/") or len(sources) > 1
            for source in sources:
                target = os.path.join(out, os.path.relpath(base, workdir or "."))
                if into_folder and os.path.isfile(os.path.join(context, source)):
                    target = os.path.join(target, os.path.basename(source))
                copy_source(context, source, os.path.normpath(target), patterns)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    dockerfile, context, out = sys.argv[1:]
    with open(dockerfile, encoding="utf-8") as f:
        stages = parse_stages(f.read())
    if not stages:
        sys.exit("image_context: no FROM in the Dockerfile")
    final = stages[-1]
    built_from = [f.split("=", 1)[1] for flags, _, _ in final["copies"] for f in flags if f.startswith("--from=")]
    if not built_from:
        sys.exit("image_context: the final stage copies nothing from a build stage")
    patterns = []
    ignore_file = os.path.join(context, ".dockerignore")
    if os.path.exists(ignore_file):
        with open(ignore_file, encoding="utf-8") as f:
            patterns = [l.strip().strip("/") for l in f if l.strip() and not l.startswith("#")]
    shutil.rmtree(out, ignore_errors=True)
    lay_out(chain(stages, built_from[0]), context, os.path.join(out, "build"), patterns)
    lay_out([final], context, os.path.join(out, "runtime"), patterns)
    for key, value in final["env"]:
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
