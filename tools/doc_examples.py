"""The code examples of the documentation, as tests: what a reader copies must run.

Fenced blocks are found with `markdown-it-py <https://markdown-it-py.readthedocs.io>`_ (the
CommonMark parser behind MkDocs' own tooling), so a fence inside a list item or after an
HTML comment is found exactly as a renderer sees it. The blocks of a page run in order in
one namespace and one working directory of their own, like a reader following the page:

* ``python`` — executed. With ``title="name.py"`` in the fence's info string (rendered as the
  block's title by Material) it is a file the page talks about: written to the working
  directory instead.
* ``pycon`` — ``>>>`` sessions, run by :mod:`doctest` in the page's namespace: the shown
  output is checked (``...`` matches anything, whitespace is normalised).
* ``bash`` — run by ``bash -e`` in the working directory; every command must succeed. A block
  that runs ``pip install`` fails unless marked as not runnable (it would change the suite's
  own environment).
* ``console`` — ``$ command`` lines, each followed by its shown output, which is checked as
  in ``pycon``.
* any other language (``toml``, ``text``, none …) is not code to run: configuration, logs.

A block is left out only when the line before it is ``<!-- docs-test: skip REASON -->``;
the test reports it as skipped with that reason. Blocks another test checks are not run
here either: ``<!-- file: PATH -->`` and ``<!-- part of: PATH -->`` blocks are compared with
the file at ``PATH``, and the ``<!-- run -->`` block is run, by ``tests/test_writing_backends.py``. A page holding
``<!-- docs-test: servers redis mongo postgresql -->`` gets real servers started on free ports
(any of the three), and the documented addresses ``redis://localhost:6379``,
``mongodb://localhost:27017`` and ``postgresql://postgres@localhost:5432`` in its blocks are
pointed at them (the machine's default ports are never used). Shell blocks run
with this interpreter first on ``PATH``, ``examples/`` linked into the working directory and
``DASKPERIMENT_EXAMPLE_SIZE=small``, so documented example commands run at test size.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
RUN_LANGUAGES = ("python", "pycon", "bash", "console")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<reason>.+?)\s*-->\s*$", re.S)
CHECKED_ELSEWHERE = re.compile(r"<!-- (file|part of): \S+ -->|<!-- run -->")
SERVERS = re.compile(r"<!--\s*docs-test:\s*servers\s+(?P<names>[a-z ]+?)\s*-->")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
INSTALLS = re.compile(r"\bpip3?\b[^\n]*\binstall\b")
DOCUMENTED_ADDRESSES = {"redis": "redis://localhost:6379", "mongo": "mongodb://localhost:27017",
                        "postgresql": "postgresql://postgres@localhost:5432"}
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SHELL_TIMEOUT = 300


@dataclass
class Block:
    """One fenced block: where it is, its language and title, its text, and why it is skipped."""

    page: Path
    line: int  #: 1-based line of the opening fence
    language: str
    title: str | None
    code: str
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Page:
    """A documentation page: its runnable blocks and the servers it needs."""

    path: Path
    blocks: list[Block]
    servers: tuple[str, ...] = ()


def doc_pages(root: Path = ROOT) -> list[Path]:
    """The pages whose examples are tested: the READMEs and everything under ``docs/``."""
    return [root / "README.md", root / "core" / "README.md", *sorted((root / "plugins").glob("*/README.md")),
            *sorted((root / "docs").rglob("*.md"))]


def parse_page(path: Path) -> Page:
    """Every block of ``path`` in a language that runs, with its skip reason if marked."""
    text = path.read_text()
    tokens = MarkdownIt("commonmark").parse(text)
    blocks: list[Block] = []
    for i, token in enumerate(tokens):
        if token.type != "fence" or token.map is None:
            continue
        language, _, attributes = token.info.strip().partition(" ")
        if language not in RUN_LANGUAGES:
            continue
        previous = tokens[i - 1] if i else None
        comment = previous.content.strip() if previous is not None and previous.type == "html_block" else ""
        if CHECKED_ELSEWHERE.fullmatch(comment):
            continue
        marker = SKIP.match(comment)
        title = TITLE.search(attributes)
        blocks.append(Block(path, token.map[0] + 1, language, title.group("title") if title else None,
                            token.content, marker.group("reason") if marker else None))
    servers = SERVERS.search(text)
    return Page(path, blocks, tuple(servers.group("names").split()) if servers else ())


@dataclass
class Session:
    """What the blocks of one page share: namespace, working directory, server addresses."""

    workdir: Path
    addresses: dict[str, str] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})
    failed: str | None = None

    def localise(self, code: str) -> str:
        """Point the documented server addresses at the servers started for the test."""
        for name, address in self.addresses.items():
            code = code.replace(DOCUMENTED_ADDRESSES[name], address)
        return code

    def run(self, block: Block) -> None:
        """Run one block; raise ``AssertionError`` naming the block and what differed."""
        code = self.localise(block.code)
        if block.language == "python":
            if block.title:
                target = self.workdir / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(code)
            else:
                self._exec(block, code)
        elif block.language == "pycon":
            self._doctest(block, code)
        elif block.language == "bash":
            self._shell(block, code)
        else:
            self._console(block, code)

    def _exec(self, block: Block, code: str) -> None:
        # a real file, so inspect.getsource (daskperiment's code context) finds the steps' source
        source = self.workdir / f"_block_{block.line}.py"
        source.write_text(code)
        exec(compile(code, str(source), "exec"), self.namespace)

    def _doctest(self, block: Block, code: str) -> None:
        test = doctest.DocTestParser().get_doctest(code, self.namespace, block.id, str(block.page), block.line)
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=OPTIONS)
        runner.run(test, out=report.append, clear_globs=False)
        if runner.failures:
            raise AssertionError(f"{block.id}: shown output differs\n{''.join(report)}")

    def environment(self) -> dict[str, str]:
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return {**os.environ, "PATH": path, "DASKPERIMENT_EXAMPLE_SIZE": "small"}

    def _refuse_installs(self, block: Block, code: str) -> None:
        """A documented install would change the environment the suite runs in."""
        if INSTALLS.search(code):
            raise AssertionError(f"{block.id}: installs packages into the test environment; mark it "
                                 "<!-- docs-test: skip REASON --> on the line before the block")

    def _shell(self, block: Block, code: str) -> None:
        self._refuse_installs(block, code)
        done = subprocess.run(["bash", "-e", "-c", code], cwd=self.workdir, capture_output=True, text=True,
                              env=self.environment(), timeout=SHELL_TIMEOUT)
        if done.returncode:
            raise AssertionError(f"{block.id}: exit {done.returncode}\n{code}\n{done.stdout[-2000:]}{done.stderr[-3000:]}")

    def _console(self, block: Block, code: str) -> None:
        self._refuse_installs(block, code)
        checker = doctest.OutputChecker()
        for command, expected in console_commands(code):
            done = subprocess.run(["bash", "-e", "-c", command], cwd=self.workdir, capture_output=True, text=True,
                                  env=self.environment(), timeout=SHELL_TIMEOUT)
            if done.returncode:
                raise AssertionError(f"{block.id}: `{command}` exited {done.returncode}\n{done.stderr[-3000:]}")
            if expected and not checker.check_output(expected, done.stdout, OPTIONS):
                raise AssertionError(f"{block.id}: `{command}` printed\n{done.stdout}\nexpected\n{expected}")


def console_commands(code: str) -> list[tuple[str, str]]:
    """``$ command`` lines and the output lines shown after each."""
    commands: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"console block must start with '$ ': {line!r}")
    return [(command, "\n".join(output).strip() + "\n" if any(output) else "") for command, output in commands]


def link_examples(workdir: Path) -> None:
    """Documented commands name ``examples/…`` relative to the repository root."""
    (workdir / "examples").symlink_to(ROOT / "examples", target_is_directory=True)


__all__ = ["Block", "Page", "Session", "console_commands", "doc_pages", "link_examples", "parse_page"]
