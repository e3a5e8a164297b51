"""The README and docs/ link only to files inside the repository (a clone has nothing beside it) and cite the
paper by its public address; the method they describe lives in docs/method.md."""

from __future__ import annotations

import re
from pathlib import Path

from and_engine.config import PROJECT_ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def _local_links(doc: Path) -> list[str]:
    return [t for t in LINK.findall(doc.read_text()) if not t.startswith(("http://", "https://", "#", "mailto:"))]


def test_every_local_link_of_the_docs_is_a_file_in_the_repository():
    broken = []
    for doc in DOCS:
        for target in _local_links(doc):
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(PROJECT_ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(PROJECT_ROOT)} -> {target}")
    assert broken == []


def test_readme_cites_the_paper_publicly_and_links_the_method():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "https://arxiv.org/abs/2406.16990" in readme and "https://proceedings.mlr.press/v235/wu24q.html" in readme
    assert "(docs/method.md)" in readme and "shared/" not in readme
    method = (PROJECT_ROOT / "docs" / "method.md").read_text()
    assert [int(n) for n in re.findall(r"^## (\d+)\.", method, re.M)] == list(range(1, 12))  # "SPEC section N"
