"""Check that README.md and docs/**/*.md point only at files that exist.

Two kinds of reference are checked:

- markdown links ``[text](path)`` with a relative path (resolved against the linking file's folder;
  ``#anchors`` are ignored, ``http(s):`` / ``mailto:`` links are skipped);
- code spans naming a repository path (`` `configs/...` ``, `` `benchmarks/...` ``, `` `scripts/...` ``,
  `` `docs/...` ``, `` `examples/...` ``), resolved against the repository root, unless they hold a
  placeholder (``NAME``, ``N``, ``*``, ``...``, ``{``, ``<``) or a command line (a space).

Prints every missing target with its file and line; exit status 1 if there is one.

    python scripts/check_doc_links.py
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
REPO_DIRS = ("configs/", "benchmarks/", "scripts/", "docs/", "examples/")
PLACEHOLDER = re.compile(r"NAME|\*|\.\.\.|[{<]|(^|/)N(/|\.|$)|stepN")


def documents(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))]


def missing(doc: Path, repo: Path = REPO) -> list[tuple[int, str]]:
    """``(line, target)`` of every reference in ``doc`` whose file does not exist."""
    bad = []
    for n, line in enumerate(doc.read_text().splitlines(), 1):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if path and not (doc.parent / path).exists():
                bad.append((n, target))
        for span in CODE.findall(line):
            path = span.rstrip(".,:;")
            if path.startswith(REPO_DIRS) and not PLACEHOLDER.search(path) and not (repo / path).exists():
                bad.append((n, path))
    return bad


def main() -> int:
    failures = 0
    for doc in documents():
        for n, target in missing(doc):
            print(f"{doc.relative_to(REPO)}:{n}: missing {target}")
            failures += 1
    print(f"checked {len(documents())} files: {failures} missing target(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
