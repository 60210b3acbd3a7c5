"""Issue 13 item 4's "a lock kept forever": refused requests for upstreams that do not exist
must not leave an in-process lock behind per name (the table held every name ever asked)."""

from __future__ import annotations

import uuid


def test_requests_for_unknown_upstreams_leave_no_lock_behind(sidecar, upstream):
    client = sidecar.client()
    service = sidecar.app.extensions["kong_canary"].service
    body = {"split": {"stable": 90, "baseline": 5, "canary": 5}}
    for _ in range(50):
        name = f"no-such-{uuid.uuid4().hex[:12]}"
        assert client.put(f"/v1/upstreams/{name}/split", json=body).status_code == 404
        assert client.post(f"/v1/upstreams/{name}/rollback").status_code == 404
    assert client.post(f"/v1/upstreams/{upstream}/rollback").status_code == 200
    assert len(service.locks) == 0
