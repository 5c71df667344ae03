#!/usr/bin/env python3
"""Fails when a file of `src/` is over 500 lines or a function in it is over 100 lines.

Function bodies are measured from the `fn` line to its closing brace, with string and character
literals and comments blanked first so that braces inside them do not count.

Usage: scripts/check-sizes.py
"""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from rust_source import blank, block_end  # noqa: E402

SRC = Path(__file__).resolve().parent.parent / "src"
MAX_FILE_LINES = 500
MAX_FN_LINES = 100

FN = re.compile(
    r'^[ \t]*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?'
    r'(?:extern\s+"C"\s+)?fn\s+(\w+)',
    re.M,
)


def main() -> int:
    problems = []
    for f in sorted(SRC.rglob("*.rs")):
        raw = f.read_text()
        lines = raw.count("\n")
        rel = f.relative_to(SRC.parent)
        if lines > MAX_FILE_LINES:
            problems.append(f"{rel}: {lines} lines (at most {MAX_FILE_LINES})")
        text = blank(raw)
        for m in FN.finditer(text):
            brace, semi = text.find("{", m.end()), text.find(";", m.end())
            if brace < 0 or 0 <= semi < brace:
                continue  # a declaration without a body
            k = block_end(text, brace)
            length = text.count("\n", m.start(), k) + 1
            if length > MAX_FN_LINES:
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{rel}:{line}: fn {m.group(1)} is {length} lines (at most {MAX_FN_LINES})")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"src/: no file over {MAX_FILE_LINES} lines, no function over {MAX_FN_LINES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
