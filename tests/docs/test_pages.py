"""Every how-to page, the index, the concepts page and the README's quick start run as written.

A page runs as a reader who copies its code would run it: its ``python`` and ``bash`` blocks in
page order, in a fresh empty folder, in one process for the Python (state carries from block
to block), on the CPU. Blocks preceded by ``<!-- not-run: REASON -->`` (CIFAR, ImageNet, a GPU,
a clone of the repository) are skipped; a block preceded by ``<!-- save-as: PATH -->`` is
written to ``PATH`` for a later block to run. ``docs/contributing-docs.md`` describes the
convention; ``run_blocks.py`` runs the blocks.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_blocks.py")

#: The pages that must run: ``(path relative to the repository, section or None)``.
PAGES: list[tuple[str, str | None]] = [
    ("docs/index.md", None),
    ("docs/concepts.md", None),
    *((p.relative_to(REPO).as_posix(), None) for p in sorted((REPO / "docs/how-to").glob("*.md"))),
    ("README.md", "Quick start"),
]
#: Languages of the blocks that run; every other block (``text``, ``json``, ...) is shown
#: output or data.
PYTHON = frozenset({"python", "py", "python3"})
SHELL = frozenset({"bash", "sh", "shell"})
#: A page must finish within 3 minutes on 2 cores; it runs on one thread here, so its CPU time
#: is about its wall time on an idle machine.
CPU_SECONDS_LIMIT = 180.0
#: Wall-clock limit of one page, generous for a busy machine; a page past it is killed.
WALL_SECONDS_LIMIT = 600.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARK = re.compile(r"^\s*<!--\s*(?P<name>not-run|save-as)\b\s*(?P<rest>.*?)\s*-->\s*$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")


class PageError(ValueError):
    """A page's code blocks or marks are malformed."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page.

    Attributes:
        number: Its position among the page's fenced blocks, from 1.
        line: Page line number of its first line of code.
        language: The fence's language (``""`` when none).
        code: The block's text, without the fence's indentation.
        not_run: The reason given by a ``not-run`` mark, or ``None``.
        save_as: The path given by a ``save-as`` mark, or ``None``.
    """

    number: int
    line: int
    language: str
    code: str
    not_run: str | None = None
    save_as: str | None = None

    @property
    def kind(self) -> str:
        """``"python"``, ``"shell"`` or ``"other"`` (never run)."""
        if self.language in PYTHON:
            return "python"
        if self.language in SHELL:
            return "shell"
        return "other"

    @property
    def runs(self) -> bool:
        """Whether the page test runs (or, for ``save-as``, writes) this block."""
        return self.not_run is None and (self.kind != "other" or self.save_as is not None)


def _parse_mark(line: str, number: int) -> tuple[str, str] | None:
    match = _MARK.match(line)
    if match is None:
        return None
    name, rest = match["name"], match["rest"]
    if not rest.startswith(":") or not rest[1:].strip():
        raise PageError(f"line {number}: write the mark as '<!-- {name}: ... -->' with a value")
    return name, rest[1:].strip()


def parse_blocks(text: str) -> list[Block]:
    """Every fenced code block of a Markdown page, with the mark that precedes it.

    A mark is an HTML comment on a line of its own, followed (blank lines allowed) by the
    fence it applies to: ``<!-- not-run: REASON -->`` or ``<!-- save-as: PATH -->``.

    Args:
        text: The page.

    Returns:
        The blocks in page order.

    Raises:
        PageError: A fence is not closed, a mark has no value, is not followed by a block,
            or two marks apply to one block.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    marks: dict[str, str] = {}
    mark_line = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        mark = _parse_mark(line, index + 1)
        if mark is not None:
            if marks:
                raise PageError(f"line {index + 1}: a second mark before one block")
            marks, mark_line = {mark[0]: mark[1]}, index + 1
            index += 1
            continue
        opening = _FENCE.match(line)
        if opening is None:
            if line.strip() and marks:
                raise PageError(f"line {mark_line}: a mark must be followed by a code block")
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].split()[0].lower() if opening["info"].strip() else ""
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = index + 1
        while end < len(lines) and closing.match(lines[end]) is None:
            end += 1
        if end == len(lines):
            raise PageError(f"line {index + 1}: the code block is never closed")
        body = [
            row[len(indent) :] if row.startswith(indent) else row for row in lines[index + 1 : end]
        ]
        blocks.append(
            Block(
                number=len(blocks) + 1,
                line=index + 2,
                language=language,
                code="\n".join(body) + "\n",
                not_run=marks.get("not-run"),
                save_as=marks.get("save-as"),
            )
        )
        marks = {}
        index = end + 1
    if marks:
        raise PageError(f"line {mark_line}: a mark must be followed by a code block")
    return blocks


def section_lines(text: str, title: str) -> range:
    """The page lines (numbered from 1) of the section under the heading ``title``.

    Args:
        text: The page.
        title: The heading's text.

    Returns:
        From the heading to the line before the next heading of the same or a higher level.

    Raises:
        PageError: No such heading.
    """
    lines = text.splitlines()
    start = level = None
    in_fence = False
    for number, line in enumerate(lines, start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading is None:
            continue
        if start is None and heading["title"] == title:
            start, level = number, len(heading["level"])
        elif start is not None and level is not None and len(heading["level"]) <= level:
            return range(start, number)
    if start is None:
        raise PageError(f"no heading {title!r}")
    return range(start, len(lines) + 1)


def page_blocks(path: Path, section: str | None = None) -> list[Block]:
    """The code blocks of a page, or of one section of it.

    Args:
        path: The Markdown file.
        section: A heading's text, or ``None`` for the whole page.

    Returns:
        The blocks in page order (numbered among all the page's blocks).
    """
    text = path.read_text(encoding="utf-8")
    blocks = parse_blocks(text)
    if section is None:
        return blocks
    lines = section_lines(text, section)
    return [block for block in blocks if block.line in lines]


def write_commands(folder: Path) -> Path:
    """Write ``python``, ``adanet`` and ``torchrun`` commands that use this test's interpreter.

    Args:
        folder: Where to write them (created).

    Returns:
        The folder, for the front of ``PATH``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    commands = {
        "python": [],
        "adanet": ["-m", "adanet"],
        "torchrun": ["-m", "torch.distributed.run"],
    }
    for name, arguments in commands.items():
        words = " ".join([f'"{sys.executable}"', *arguments, '"$@"'])
        script = folder / name
        script.write_text(f"#!/bin/sh\nexec {words}\n", encoding="utf-8")
        script.chmod(0o755)
    return folder


def page_environment(commands: Path) -> dict[str, str]:
    """The environment a page runs in: the CPU only, one thread, plots to files.

    Args:
        commands: The folder of :func:`write_commands`.

    Returns:
        The environment.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(commands), env.get("PATH", "")])
    env["CUDA_VISIBLE_DEVICES"] = ""  # the pages must run on the CPU
    env["OMP_NUM_THREADS"] = "1"  # two pages run at once on two cores
    env["MPLBACKEND"] = "Agg"
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


@dataclass(frozen=True)
class PageRun:
    """The outcome of running a page's blocks."""

    returncode: int
    output: str
    wall_seconds: float
    cpu_seconds: float


def run_blocks(page: str, blocks: list[Block], workdir: Path) -> PageRun:
    """Run the blocks that run, in ``workdir / "page"`` (a fresh empty folder).

    Args:
        page: The page's path, as failures name it.
        blocks: The page's blocks.
        workdir: A fresh folder for the page folder, the block list and the commands.

    Returns:
        Exit status, output (stdout and stderr interleaved), wall and CPU seconds.
    """
    folder = workdir / "page"
    folder.mkdir()
    spec = workdir / "blocks.json"
    runnable = [{**asdict(b), "kind": b.kind} for b in blocks if b.runs]
    spec.write_text(json.dumps({"page": page, "blocks": runnable}), encoding="utf-8")
    env = page_environment(write_commands(workdir / "bin"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(RUNNER), str(spec)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a timeout ends all of it
    )
    try:
        output, _ = process.communicate(timeout=WALL_SECONDS_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\nFAILED: {page} still running after {WALL_SECONDS_LIMIT:.0f} s"
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return PageRun(process.returncode, output, wall, cpu)


def _failure_summary(output: str) -> str:
    failed = [line for line in output.splitlines() if line.startswith("FAILED: ")]
    tail = "\n".join(output.splitlines()[-80:])
    return f"{failed[-1] if failed else 'the page did not finish'}\n--- output (end) ---\n{tail}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "section"),
    PAGES,
    ids=[p if s is None else f"{p}#{s.lower().replace(' ', '-')}" for p, s in PAGES],
)
def test_page_runs_as_written(page: str, section: str | None, tmp_path: Path) -> None:
    blocks = page_blocks(REPO / page, section)
    assert any(block.runs for block in blocks), f"{page}: no block to run"
    run = run_blocks(page, blocks, tmp_path)
    print(run.output)
    print(f"{page}: {run.wall_seconds:.1f} s wall, {run.cpu_seconds:.1f} s CPU")
    if run.returncode != 0:
        pytest.fail(_failure_summary(run.output), pytrace=False)
    assert run.cpu_seconds < CPU_SECONDS_LIMIT, (
        f"{page} took {run.cpu_seconds:.0f} s of CPU; a page must finish within "
        f"{CPU_SECONDS_LIMIT:.0f} s"
    )


# The parser and the runner on small pages of their own.

_PAGE = """\
# A page

```python
x = 1
```

Output:

```text
1
```

<!-- not-run: needs CIFAR-10 -->
```python
load_cifar()
```

<!-- save-as: tool.py -->

```python
print("saved")
```

!!! note
    ```bash
    echo "$((x + 1))"
    ```
"""


def test_blocks_are_found_with_their_marks_and_lines() -> None:
    blocks = parse_blocks(_PAGE)
    assert [(b.number, b.line, b.kind, b.runs) for b in blocks] == [
        (1, 4, "python", True),
        (2, 10, "other", False),
        (3, 15, "python", False),
        (4, 21, "python", True),
        (5, 26, "shell", True),
    ]
    assert blocks[2].not_run == "needs CIFAR-10"
    assert blocks[3].save_as == "tool.py"
    assert blocks[4].code == 'echo "$((x + 1))"\n'  # the admonition's indentation removed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- not-run -->\n```python\npass\n```\n", "with a value"),
        ("<!-- not-run: -->\n```python\npass\n```\n", "with a value"),
        ("<!-- save-as: a.py -->\nSome prose.\n```python\npass\n```\n", "followed by a code"),
        ("text\n<!-- not-run: GPU -->\n", "followed by a code"),
        ("<!-- not-run: GPU -->\n<!-- save-as: a.py -->\n```python\npass\n```\n", "second mark"),
        ("```python\npass\n", "never closed"),
    ],
    ids=["no-value", "empty-value", "prose-in-between", "no-block-after", "two-marks", "unclosed"],
)
def test_malformed_pages_are_refused(text: str, message: str) -> None:
    with pytest.raises(PageError, match=message):
        parse_blocks(text)


def test_a_section_holds_the_blocks_under_its_heading(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n```bash\nmake\n```\n## Quick start\n```python\na = 1\n```\n"
        "### Detail\n```python\nb = 2\n```\n## Next\n```python\nc = 3\n```\n",
        encoding="utf-8",
    )
    blocks = page_blocks(page, "Quick start")
    assert [b.code for b in blocks] == ["a = 1\n", "b = 2\n"]
    assert [b.number for b in blocks] == [2, 3]
    with pytest.raises(PageError, match="no heading"):
        page_blocks(page, "Missing")


def _run_text(text: str, tmp_path: Path) -> PageRun:
    return run_blocks("docs/page.md", parse_blocks(text), tmp_path)


def test_state_carries_between_python_and_shell_blocks(tmp_path: Path) -> None:
    text = (
        "```python\nfrom pathlib import Path\n\ndef double(n):\n```\n"
        "The function continues in the next block.\n"
        "```python\n    return 2 * n\n\nPath('a.txt').write_text(str(double(21)))\n```\n"
        "```bash\npython -c 'import sys; print(sys.argv[1])' \"$(cat a.txt)\" > b.txt\n```\n"
        "<!-- save-as: tools/show.py -->\n```python\nprint(open('b.txt').read().strip())\n```\n"
        "```python\nassert Path('b.txt').read_text().strip() == '42'\n```\n"
        "```bash\npython tools/show.py\n```\n"
        "<!-- not-run: would fail -->\n```python\nraise SystemExit(3)\n```\n"
    )
    run = _run_text(text, tmp_path)
    assert run.returncode == 0, run.output
    assert run.output.rstrip().endswith("42")
    assert (tmp_path / "page" / "tools" / "show.py").is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "```python\nx = 1\n```\ntext\n```python\ny = x + z\n```\n",
            "docs/page.md, block 2 (python, line 6): NameError",
        ),
        (
            "```python\nx = 1\n```\n```python\nif x:\n```\n",
            "docs/page.md, block 2 (python, line 5): SyntaxError",
        ),
        (
            "```python\nx = 1\n```\n```bash\ntrue\nexit 3\necho never\n```\n",
            "docs/page.md, block 2 (shell, line 5): exit status 3",
        ),
        (
            "```python\ndef f():\n    return z\n```\n```python\nf()\n```\n",
            "docs/page.md, block 2 (python, line 6): NameError: name 'z' is not defined "
            "(raised at page line 3)",
        ),
        (
            "```python\nimport json\n```\n```python\njson.loads('{')\n```\n",
            "docs/page.md, block 2 (python, line 5): JSONDecodeError",
        ),
    ],
    ids=["name-error", "syntax-error", "shell-status", "raised-in-earlier-block", "library-error"],
)
def test_a_failure_names_the_page_and_block(text: str, expected: str, tmp_path: Path) -> None:
    run = _run_text(text, tmp_path)
    assert run.returncode == 1
    assert f"FAILED: {expected}" in run.output, run.output
