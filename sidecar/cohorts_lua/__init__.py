"""Lua templates the sidecar renders for Kong (package data; see ``sidecar/core/cohort_lua.py``)."""
