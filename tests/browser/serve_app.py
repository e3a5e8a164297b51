"""Start the app for the browser test: ``python tests/browser/serve_app.py PORT [--tiny-model]``.

Runs ``streamlit run app.py`` inside this process on 127.0.0.1:PORT. With ``--tiny-model`` the model
registry first points at the fixture's tiny random model (the fixture database's ``tinynet`` is no
registry kind), so live pruning works on the test database. The database comes from ``AND_EXPLORER_DB``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main(port: int, tiny_model: bool) -> None:
    from _app_tiny_model import tiny_target_model
    from streamlit.web import cli

    import and_engine.models.registry as registry

    if tiny_model:
        registry.load_target_model = lambda *args, **kwargs: (tiny_target_model(), {"description": "tiny"})
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port), "--server.address",
                "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # + .streamlit/
    cli.main()


if __name__ == "__main__":
    main(int(sys.argv[1]), "--tiny-model" in sys.argv[2:])
