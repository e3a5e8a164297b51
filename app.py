"""AND Explorer: the Streamlit app over a results database (``streamlit run app.py``).

Pages live in ``pages/`` and only call ``and_engine.explorer`` (query layer, charts, live functions).
Which database is shown: ``AND_EXPLORER_DB`` / ``AND_EXPLORER_CONFIG`` (see ``pages/_shared.py``).
"""

import streamlit as st

from pages._shared import close_stores

st.set_page_config(page_title="AND Explorer", page_icon=":material/headphones:", layout="wide")

# url_path = the file name, so a first request in Streamlit's legacy pages/ mode maps onto the same page
PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/insights:", url_path="overview"),
    st.Page("pages/neuron.py", title="Neuron", icon=":material/search:", url_path="neuron"),
    st.Page("pages/concepts.py", title="Concepts", icon=":material/label:", url_path="concepts"),
    st.Page("pages/pruning.py", title="Pruning", icon=":material/content_cut:", url_path="pruning"),
    st.Page("pages/by_sound.py", title="Query by sound", icon=":material/graphic_eq:", url_path="by_sound"),
    st.Page("pages/compare.py", title="Compare models", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/human_eval.py", title="Human evaluation", icon=":material/how_to_reg:", url_path="human_eval"),
]


def _home() -> None:
    """The root URL opens the Overview at its own address. (Streamlit serves its default page only at the root,
    so an Overview that is the default page made /overview a "Page not found".)"""
    st.switch_page(PAGES[0])


HOME = st.Page(_home, title="AND Explorer", url_path="home", default=True, visibility="hidden")

try:
    st.navigation([HOME, *PAGES]).run()
finally:
    close_stores()  # hold no database lock between page views (a build may write meanwhile)
