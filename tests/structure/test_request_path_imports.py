"""The request path does not import the development tools.

The embedded Kong (``sidecar.kong_local``) and the Orca simulator (``sidecar.spinnaker``)
stay in the package for ``./scripts/serve`` and the tests, but a sidecar in front of a real
Kong must not load them: importing ``sidecar.app``, building the app and ``sidecar.serve``'s
gunicorn application load neither; only ``serve`` without a Kong URL (the embedded default)
starts the embedded Kong. Checked in a fresh interpreter, since this one has imported
everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

TOOLS = ("sidecar.kong_local", "sidecar.spinnaker")

PROBE = """
import json, sys
from sidecar.settings import load_settings
environ = {
    "KONG_CANARY_KONG_ADMIN_URL": "http://127.0.0.1:9",
    "KONG_CANARY_TOKENS": "spinnaker=spinnaker-token-0123456789",
}
import sidecar.app, sidecar.serve, sidecar.worker
from sidecar.app import close_app, create_app
settings = load_settings(environ=environ)
close_app(create_app(settings, sweep_leases=False))
application = sidecar.serve.SidecarApplication(settings)
close_app(application.load())
%s
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[:2] in %r)))
"""


def _loaded(extra: str = "") -> list[str]:
    tools = [t.split(".") for t in TOOLS]
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (extra, tools)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_and_serving_the_app_loads_no_development_tool() -> None:
    assert _loaded() == []


def test_the_probe_sees_a_development_tool_once_it_is_imported() -> None:
    assert "sidecar.kong_local.server" in _loaded("import sidecar.kong_local.server")
