"""The guides' code works: every ```python block of docs/*.md runs, so a guide cannot go stale.

Each document runs in a fresh temporary directory, its blocks in order and in one namespace.
Two marks in a fence's info string change that:

    ```python no-run                     shown, never run (keep these rare)
    ```toml file=imgzoo-x/pyproject.toml  any language: written to that path (relative to the
                                          temporary directory) instead of run, so that a guide
                                          can build a package that its later blocks import and test

Errors point at the document's own line numbers.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    language: str
    body: str
    line: int  # of the block's first line of code in the document
    file: str | None = None
    run: bool = True


def code_blocks(text: str) -> Iterator[Block]:
    """The fenced blocks of a markdown text, with their marks."""
    for match in FENCE.finditer(text):
        language, *marks = match["info"].split()
        options = dict(mark.partition("=")[::2] for mark in marks)
        yield Block(
            language=language,
            body=match["body"],
            line=text.count("\n", 0, match.start("body")) + 1,
            file=options.get("file") or None,
            run="no-run" not in options,
        )


def test_code_blocks_are_read_with_their_marks() -> None:
    text = (
        "# Title\n\n```python\nx = 1\n```\n\n```toml file=a/b.toml\n[a]\n```\n```python no-run\nboom\n```\n"
    )
    blocks = list(code_blocks(text))
    assert [(b.language, b.line, b.file, b.run) for b in blocks] == [
        ("python", 4, None, True),
        ("toml", 8, "a/b.toml", True),
        ("python", 11, None, False),
    ]
    assert blocks[0].body == "x = 1\n"


def guides() -> list[Path]:
    """The documents with Python in them; the reference pages (models, benchmarks) have none."""
    return [
        document
        for document in sorted(DOCS.glob("*.md"))
        if any(block.language == "python" for block in code_blocks(document.read_text(encoding="utf-8")))
    ]


def test_the_plugin_guide_is_among_the_guides_run() -> None:
    assert DOCS / "plugins.md" in guides()


@pytest.mark.slow
@pytest.mark.parametrize("document", guides(), ids=lambda path: path.name)
def test_every_python_block_runs(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(sys, "path", list(sys.path))  # a guide may add its package's src/ folder
    modules_before = set(sys.modules)
    namespace: dict[str, object] = {"__name__": f"docs.{document.stem}"}
    ran = 0
    try:
        for block in code_blocks(document.read_text(encoding="utf-8")):
            if block.file is not None:
                target = tmp_path / block.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.body, encoding="utf-8")
            elif block.language == "python" and block.run:
                # Blank lines in front, so tracebacks give the document's line numbers.
                code = compile("\n" * (block.line - 1) + block.body, str(document), "exec")
                exec(code, namespace)
                ran += 1
    finally:
        # Forget the modules the guide imported from its temporary directory.
        for name in set(sys.modules) - modules_before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(tmp_path)):
                del sys.modules[name]
    assert ran, f"{document.name} has no python block to run"
