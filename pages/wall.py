import streamlit as st

st.title("Wall")
