"""Every code block in README.md and docs/*.md runs as written.

The convention, per fenced block, by its info string (the word after the opening fence):

* ```python: written to a file and run as a standalone script (``python FILE``); a block whose
  first line is a comment naming a file (``# models.py``) is written under that name, so later
  blocks can import it or run pytest on it;
* ```bash: run with ``bash -e``;
* ```console (commands shown but not run), ```text, ```toml, ```json, ```yaml, ```ini: not run.

Any other opening fence fails the test, naming the document and line (```py, ```Python,
```python title=x, ```sh, a bare ```): such a block would otherwise silently never run. Fences
may be indented (inside a list item) and be backticks or tildes (~~~python runs too).

The blocks of one document run in order, each in a fresh process, in one fresh temporary
directory per document (so a later block sees the files an earlier one left there), with this
environment's ``bin`` directory first on PATH (``python`` and ``netabase`` are the project's)
and the repository root on PYTHONPATH (so ``import examples.sqlite_backend`` works). A block
fails on a non-zero exit or after 60 s; the
failure names the document and the block's line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "bash"}
SHOWN = {"console", "text", "toml", "json", "yaml", "ini"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_FILE_NAME = re.compile(r"#\s*([\w.-]+\.py)\s*(:|$)")


def blocks(path: Path) -> list[tuple[int, str, str]]:
    """The fenced blocks of a document: (line of the opening fence, info string, code)."""
    found: list[tuple[int, str, str]] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence, info = opening.groups()
        start, body = index + 1, []
        index += 1
        closing = re.compile(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*")
        while index < len(lines) and not closing.fullmatch(lines[index]):
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        found.append((start, info.strip(), "\n".join(body) + "\n"))
        index += 1
    return found


def run_block(kind: str, code: str, cwd: Path, line: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if kind == "python":
        named = _FILE_NAME.match(code.split("\n", 1)[0])
        script = cwd / (named.group(1) if named else f"block_{line}.py")
        script.write_text(code)
        command = [sys.executable, script.name]
    else:
        command = ["bash", "-e", "-c", code]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def unknown_fences(path: Path) -> list[str]:
    """The opening fences of a document that neither run nor are known to be shown only."""
    return [
        f"{path.name}:{line}: fence info {info!r} is neither {sorted(RUN)} (run) "
        f"nor {sorted(SHOWN)} (shown)"
        for line, info, _ in blocks(path)
        if info not in RUN | SHOWN
    ]


def test_fences_that_would_not_run_are_refused(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text(
        "```py\nx\n```\n```Python\nx\n```\n```python title=a.py\nx\n```\n"
        "~~~python\nx\n~~~\n- item\n\n  ```sh\n  x\n  ```\n```\nx\n```\n"
        "````text\n```python\nnot a fence\n```\n````\n```python\nok\n```\n"
    )
    assert [info for _, info, _ in blocks(document)] == [
        "py", "Python", "python title=a.py", "python", "sh", "", "text", "python"
    ]  # fmt: skip
    assert [problem.split(": ")[0] for problem in unknown_fences(document)] == [
        "doc.md:1", "doc.md:4", "doc.md:7", "doc.md:15", "doc.md:18"
    ]  # fmt: skip


def test_blocks_are_found() -> None:
    readme = blocks(ROOT / "README.md")
    assert readme[0][1] == "console", "README's set-up commands are shown, not run"
    assert any(info == "python" for _, info, _ in readme)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_code_blocks_run(document: Path, tmp_path: Path) -> None:
    assert not unknown_fences(document), "\n".join(unknown_fences(document))
    for line, info, code in blocks(document):
        if info not in RUN:
            continue
        result = run_block(info, code, tmp_path, line)
        assert result.returncode == 0, (
            f"{document.relative_to(ROOT)}:{line}: the {info} block exited "
            f"{result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )


def test_shop_example_runs(tmp_path: Path) -> None:
    """README's first command, shortened: the shop workload on LMDB in ./shop.db."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "shop.py"), "--seconds", "0.5", "--clients", "4"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "shop.db" / "data.mdb").exists()
