"""Kong Admin API: typed client, entity models and errors."""
