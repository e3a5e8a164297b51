"""AND Explorer's offline engine: Audio Network Dissection (ICML 2024) into a DuckDB database.

Never imports streamlit. Entry point: ``python -m and_engine``.
"""

__version__ = "0.1.0"
