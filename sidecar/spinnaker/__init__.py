"""Spinnaker artefacts: preconfigured webhook stages, MPT v2 templates, and an Orca simulator.

Everything shipped in ``pipeline-templates/`` is rendered from ``source.yaml`` by
:mod:`sidecar.spinnaker.generate`; :mod:`sidecar.spinnaker.rules` checks it against Orca's
save-time and run-time rules, and :mod:`sidecar.spinnaker.orca` replays Orca's webhook-stage
behaviour against a real HTTP endpoint.
"""
