"""Run the code blocks of one documentation page in order, as a reader who copies them would.

Usage: ``python run_blocks.py BLOCKS_JSON``, in the folder the page should run in.

``BLOCKS_JSON`` is what ``test_pages.py`` writes: ``{"page": "docs/how-to/x.md", "blocks":
[{"number": 1, "line": 12, "kind": "python", "code": "...", "save_as": null}, ...]}``, in page
order, without the blocks marked ``not-run``. What happens to each block:

* ``python``: consecutive Python blocks are joined into one program, each line at its own line
  number in the page (the lines between blocks left blank), and executed in one namespace that
  lives as long as the page does: a block sees everything the blocks before it defined, and a
  function may continue from one block into the next. Tracebacks name the page and its line.
* ``shell``: run by ``bash -e -o pipefail`` in the same folder, after the Python before it.
* ``save_as``: the block's text is written to that path (a file the page then runs), not run.

On the first failure the script prints which block failed and exits with status 1. Only the
standard library is imported here, so a page's own imports are timed as part of the page.
"""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
import traceback
import types
from pathlib import Path
from types import TracebackType
from typing import Any

Block = dict[str, Any]


class BlockFailed(Exception):
    """A block of the page failed; the message names the page and the block."""


def describe(page: str, block: Block) -> str:
    """``docs/x.md, block 3 (python, line 41)``: how a failure names its block.

    Args:
        page: The page's path, relative to the repository.
        block: The block.

    Returns:
        The description.
    """
    return f"{page}, block {block['number']} ({block['kind']}, line {block['line']})"


def block_at(blocks: list[Block], line: int) -> Block:
    """The block that holds page line ``line`` (the last one starting at or before it).

    Args:
        blocks: Blocks in page order, non-empty.
        line: A line number of the page.

    Returns:
        The block.
    """
    found = blocks[0]
    for block in blocks:
        if block["line"] <= line:
            found = block
    return found


def page_lines(page: str, tb: TracebackType | None) -> list[int]:
    """The page lines of the traceback's frames that run the page's own code, outermost first.

    Args:
        page: The file name the page's program was compiled under.
        tb: The traceback of the exception.

    Returns:
        The line numbers (empty when no frame belongs to the page).
    """
    return [line for frame, line in traceback.walk_tb(tb) if frame.f_code.co_filename == page]


def run_python(page: str, blocks: list[Block], namespace: dict[str, Any]) -> None:
    """Join consecutive Python blocks into one program and execute it in ``namespace``.

    Args:
        page: The page's path (the program's file name in tracebacks).
        blocks: Consecutive Python blocks of the page.
        namespace: The page's namespace, shared by all its Python blocks.

    Raises:
        BlockFailed: The program raised, or does not compile.
    """
    last = blocks[-1]
    lines = [""] * (last["line"] + last["code"].count("\n") + 1)
    for block in blocks:
        for offset, text in enumerate(block["code"].splitlines()):
            lines[block["line"] - 1 + offset] = text
    source = "\n".join(lines) + "\n"
    numbers = ", ".join(str(block["number"]) for block in blocks)
    print(f"== {page}: python block(s) {numbers}", flush=True)
    try:
        program = compile(source, page, "exec", dont_inherit=True)
    except SyntaxError as error:
        block = block_at(blocks, error.lineno or blocks[0]["line"])
        raise BlockFailed(f"{describe(page, block)}: SyntaxError: {error}") from error
    try:
        exec(program, namespace)
    except BaseException as error:
        if isinstance(error, SystemExit) and error.code in (None, 0):
            return
        # The block that was running is the one of the outermost frame in the page; the
        # error may have been raised further in, in a function an earlier block defined.
        lines = page_lines(page, error.__traceback__)
        block = block_at(blocks, lines[0]) if lines else blocks[0]
        where = f"raised at page line {lines[-1]}" if lines else "outside the page's code"
        detail = "".join(traceback.format_exception(error))
        raise BlockFailed(
            f"{describe(page, block)}: {type(error).__name__}: {error} ({where})\n{detail}"
        ) from error
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def run_shell(page: str, block: Block) -> None:
    """Run a shell block with bash, stopping at its first failing command.

    Args:
        page: The page's path.
        block: The shell block.

    Raises:
        BlockFailed: A command failed.
    """
    print(f"== {page}: shell block {block['number']}", flush=True)
    sys.stderr.flush()
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block["code"]], check=False)
    if done.returncode != 0:
        raise BlockFailed(f"{describe(page, block)}: exit status {done.returncode}")


def save_block(page: str, block: Block) -> None:
    """Write a block's text to the file it is marked ``save-as``.

    Args:
        page: The page's path.
        block: The block.
    """
    path = Path(block["save_as"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block["code"], encoding="utf-8")
    print(f"== {page}: block {block['number']} saved as {path}", flush=True)


def run_page(page: str, blocks: list[Block]) -> None:
    """Run every block of a page in order, in the current folder.

    Args:
        page: The page's path, relative to the repository.
        blocks: Its blocks to run, in page order.

    Raises:
        BlockFailed: At the first failing block.
    """
    # The page's code runs as the main module of its process, as a script of its own would:
    # classes it defines can be pickled by name, registries see the module "__main__".
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    namespace = module.__dict__
    sys.argv = [page]
    pending: list[Block] = []
    for block in blocks:
        if block["kind"] == "python" and block["save_as"] is None:
            pending.append(block)
            continue
        if pending:
            run_python(page, pending, namespace)
            pending = []
        if block["save_as"] is not None:
            save_block(page, block)
        else:
            run_shell(page, block)
    if pending:
        run_python(page, pending, namespace)


def main(argv: list[str]) -> int:
    """Run the page described by the JSON file ``argv[1]``.

    Args:
        argv: The command line.

    Returns:
        0 when every block ran, 1 at the first failure.
    """
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    try:
        run_page(spec["page"], spec["blocks"])
    except BlockFailed as failure:
        sys.stdout.flush()
        print(f"FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
