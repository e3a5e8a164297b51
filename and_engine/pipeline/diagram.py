"""The pipeline graph as a Mermaid flowchart: stages (with the tables they fill) grouped by step group,
and an arrow from every upstream stage (dashed when it counts only under a condition).

``mermaid() -> str`` is what ``docs/ARCHITECTURE.md`` shows (a test keeps the two equal); print it with
``python -m and_engine.pipeline.diagram``.
"""

from __future__ import annotations

from and_engine.pipeline.graph import GROUPS, PER_LAYER, PER_MODEL, STAGES, When

_SCOPE = {(): "once", PER_MODEL: "per model", PER_LAYER: "per layer"}


def mermaid() -> str:
    """-> the Mermaid source of the pipeline graph (deterministic: declaration order)."""
    lines = ["flowchart TD"]
    for group in GROUPS:
        lines.append(f"  subgraph {group}")
        for s in (s for s in STAGES if s.group == group):
            tables = ", ".join(s.tables)
            lines.append(f'    {s.name}["<b>{s.name}</b> ({_SCOPE[s.scope]})<br/><i>{tables}</i>"]')
        lines.append("  end")
    for s in STAGES:
        for u in s.upstream:
            arrow = "-.->" if isinstance(u, When) else "-->"
            lines.append(f"  {u.item if isinstance(u, When) else u} {arrow} {s.name}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(mermaid(), end="")
