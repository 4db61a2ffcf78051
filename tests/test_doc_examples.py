"""Every code example of the READMEs and of ``docs/`` runs, and its shown output is what it prints.

One test per block, in page order; the blocks of a page share a namespace and a working
directory (see :mod:`tools.doc_examples` for what each fence language means and how a block
is marked as not runnable).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tools.doc_examples import ROOT, Block, Session, doc_pages, link_examples, parse_page

PAGES = {path: parse_page(path) for path in doc_pages()}
BLOCKS = [block for page in PAGES.values() for block in page.blocks]
_sessions: dict[Path, Session] = {}


def _session(block: Block, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Session:
    """The page's session, made when its first block runs (with its servers started)."""
    if block.page not in _sessions:
        workdir = tmp_path_factory.mktemp(block.page.stem)
        link_examples(workdir)
        session = Session(workdir)
        for name in PAGES[block.page].servers:
            server = request.getfixturevalue(f"{name}_server")
            parts = urlsplit(server.uri)
            session.addresses[name] = f"{parts.scheme}://{parts.netloc}"
            if name == "redis":  # the page starts from an empty database
                import redis

                with redis.Redis.from_url(server.uri) as client:
                    client.flushdb()
        _sessions[block.page] = session
    return _sessions[block.page]


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_example(block: Block, request, tmp_path_factory, monkeypatch):
    if block.skip:
        pytest.skip(f"marked not runnable: {block.skip}")
    session = _session(block, request, tmp_path_factory)
    if session.failed:
        pytest.skip(f"an earlier block of this page failed ({session.failed})")
    monkeypatch.chdir(session.workdir)
    try:
        session.run(block)
    except BaseException:
        session.failed = block.id
        raise


def test_readme_install_and_test_commands_are_not_run_from_the_tests():
    """README's first block runs the whole suite: running it from the suite would recurse."""
    first = PAGES[ROOT / "README.md"].blocks[0]
    assert first.language == "bash" and first.skip
