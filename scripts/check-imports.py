#!/usr/bin/env python3
"""Report import cycles between files of `src/`, and imports that point up the layering.

Every `crate::…`, `super::…` and `self::…` path in a file is resolved to the file that defines
the module it names (the longest prefix that is a module). Two files that reach each other, directly
or through others, form a cycle, except that a module's own file (`x/mod.rs`) reaching into its
children (`x/*.rs`) does not count: that is the module declaring and re-exporting its parts, and
the children reaching back to `super` is the usual Rust shape; a file of a low layer that reaches a higher one is a back-arrow.
Inline test modules (`#[cfg(test)] mod tests { … }`) are skipped: tests may reach anything.

Usage: scripts/check-imports.py [--graph]   (exit 1 when a cycle or a back-arrow is found)
"""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from rust_source import blank, block_end  # noqa: E402

SRC = Path(__file__).resolve().parent.parent / "src"

# Lower layers must not import higher ones. A module not listed is not checked for layering.
LAYERS = [
    ["durable", "frame", "jpeg", "memory", "npy", "pem", "prediction", "recording"],
    ["config"],
    ["backend", "outbox", "model"],
    ["sensor", "pipeline", "mqtt", "metrics"],
    ["service", "manage", "homeassistant"],
    ["app", "cli", "daemon"],
    ["main", "lib"],
]


def module_of(path: Path) -> tuple:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return tuple(parts)
    return tuple(parts)


def strip_tests(text: str) -> str:
    """Drop `#[cfg(test)]` items (a `mod … { … }` block or a single `use`)."""
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        j = m.end()
        # Skip further attributes.
        while text.startswith("#[", j):
            j = text.index("]", j) + 1
            while j < len(text) and text[j].isspace():
                j += 1
        brace = text.find("{", j)
        semi = text.find(";", j)
        if semi != -1 and (brace == -1 or semi < brace):
            i = semi + 1
            continue
        k = block_end(text, brace)
        i = k + 1
    return "".join(out)


def expand_use(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree.split(" as ")[0]]
    prefix, body = m.group(1), m.group(2)
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        items.append(cur)
    paths = []
    for item in items:
        for p in expand_use(item):
            paths.append(prefix + p if p != "self" else prefix.rstrip(":"))
    return paths


def main() -> int:
    files = sorted(SRC.rglob("*.rs"))
    modules = {module_of(f): f for f in files}
    # Items a module's face re-exports from a child: `pub use child::{A, B}` -> A, B live in child.
    reexports = {}
    for f in files:
        mod = module_of(f)
        text = strip_tests(blank(f.read_text()))
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
            for p in expand_use(m.group(1)):
                parts = [x for x in p.split("::") if x != "self"]
                if len(parts) >= 2 and mod + (parts[0],) in modules:
                    child = mod + tuple(parts[:-1])
                    while child not in modules:
                        child = child[:-1]
                    reexports[mod + (parts[-1],)] = child
    deps = {}
    for f in files:
        mod = module_of(f)
        text = strip_tests(blank(f.read_text()))
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            paths += expand_use(m.group(1))
        paths += re.findall(r"(?<![\w:])((?:crate|super|self|[a-z_][a-z0-9_]*)(?:::\w+)+)", text)
        targets = set()
        for p in paths:
            parts = p.split("::")
            if parts[0] == "crate":
                base, rest = (), parts[1:]
            elif parts[0] in ("super", "self"):
                base = mod
                rest = parts
                while rest and rest[0] in ("super", "self"):
                    if rest[0] == "super":
                        base = base[:-1]
                    rest = rest[1:]
            elif mod + (parts[0],) in modules:
                base, rest = mod, parts
            else:
                continue
            if mod == ("main",):
                base = ()
            best = None
            for n in range(len(rest), -1, -1):
                cand = base + tuple(rest[:n])
                if cand in modules:
                    best = cand
                    if n < len(rest):
                        best = reexports.get(cand + (rest[n],), cand)
                    break
            if best is not None and best != mod and best not in ((), ("lib",)):
                # A child module importing its parent's items is not a cycle unless the parent
                # also imports the child's; record it like any other edge.
                targets.add(best)
        deps[mod] = targets

    name = lambda m: "/".join(m) or "lib"
    if "--graph" in sys.argv:
        for m, ts in sorted(deps.items()):
            print(name(m), "->", ", ".join(sorted(name(t) for t in ts)))

    # Strongly connected components (Tarjan).
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps.get(v, ()):
            if w[: len(v)] == v:
                continue  # a module's face (its mod.rs) reaching into its own children
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in deps:
        if v not in index:
            visit(v)

    failures = 0
    for comp in comps:
        print("cycle:", " -> ".join(name(m) for m in comp))
        failures += 1

    # Top-level folders must not reach each other either.
    tops = {}
    for m, ts in deps.items():
        for t in ts:
            if m and t and m[0] != t[0]:
                tops.setdefault(m[0], set()).add(t[0])
    for a in sorted(tops):
        for b in sorted(tops[a]):
            if a < b and a in tops.get(b, ()):
                edges = [
                    f"{name(m)} -> {name(t)}"
                    for m, ts in sorted(deps.items())
                    for t in sorted(ts)
                    if m and t and {m[0], t[0]} == {a, b}
                ]
                print(f"folders {a} and {b} import each other: " + "; ".join(edges))
                failures += 1

    layer_of = {}
    for i, layer in enumerate(LAYERS):
        for top in layer:
            layer_of[top] = i
    for m, ts in sorted(deps.items()):
        lm = layer_of.get(m[0]) if m else None
        for t in sorted(ts):
            lt = layer_of.get(t[0]) if t else None
            if lm is not None and lt is not None and lt > lm:
                print(f"back-arrow: {name(m)} -> {name(t)}")
                failures += 1
    if failures:
        print(f"{failures} problem(s)")
        return 1
    print(f"{len(deps)} files: no import cycle, no back-arrow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
