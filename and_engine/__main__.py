"""``python -m and_engine`` entry point."""

import sys

from and_engine.cli import main

sys.exit(main())
