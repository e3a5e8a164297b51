import streamlit as st

st.title("Query by sound")
