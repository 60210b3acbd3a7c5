"""Kayenta canary-config library: generation, schema checks, template expansion, offline judge.

Everything here mirrors a specific Kayenta class so that a config that passes our checks and our
offline judge behaves the same way inside a real Kayenta (sources are cited per module).
"""
