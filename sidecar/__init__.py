"""kong-canary: canary traffic splitting for Kong Gateway, for Spinnaker and Kayenta."""

__version__ = "0.1.0"
