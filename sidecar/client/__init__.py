"""``kong-canary get|set|ramp|rollback|promote|rollback-all|cancel|watch``: the on-call
engineer's client of the sidecar's HTTP API. Decisions and formatting are pure
(``format``), HTTP is ``connection``, rendering is ``views``."""
