"""A Kong-compatible Admin API server: the embedded default and the integration-test peer."""
