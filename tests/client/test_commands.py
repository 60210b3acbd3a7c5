"""Every client command against the real sidecar and the local Kong: what a person reads,
what a script parses, what Kong ends up with, and the documented exit codes."""

from __future__ import annotations

import json
import re

import httpx
import yaml

from sidecar.client.format import ExitCode
from tests.client.conftest import ADMIN_TOKEN, READ_TOKEN, WRITE_TOKEN

CANARY, BASELINE = "10.0.0.3:80", "10.0.0.2:80"
TARGET_ARGS = ("--canary", CANARY, "--baseline", BASELINE)


def _set(live, upstream, split="90/5/5"):
    result = live.run("set", upstream, split, *TARGET_ARGS)
    assert result.exit_code == 0, result.output
    return result


def test_get_shows_split_bars_targets_and_lease(live, upstream):
    _set(live, upstream)
    result = live.run("get", upstream, token=READ_TOKEN)
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"stable\s+█{30,}.*\s90 %", out)
    assert re.search(r"canary\s+██\s+5 %", out)
    assert f"{CANARY}  canary" in out and "10.0.0.1:80" in out
    assert re.search(r"lease\s+returns to stable in (1h 00m|59m \d\ds)", out)
    assert "no gateway metrics" in out


def test_get_json_and_yaml_for_scripts(live, upstream):
    _set(live, upstream)
    as_json = json.loads(live.run("get", upstream, "-o", "json").stdout)
    (entry,) = as_json["upstreams"]
    assert entry["split"] == {"stable": 90.0, "baseline": 5.0, "canary": 5.0}
    assert {t["target"]: t["variant"] for t in entry["targets"]}[CANARY] == "canary"
    as_yaml = yaml.safe_load(live.run("get", upstream, "-o", "yaml").stdout)
    assert as_yaml == {
        **as_json,
        "upstreams": [{**entry, "history": as_yaml["upstreams"][0]["history"]}],
    }


def test_get_without_an_upstream_lists_the_managed_ones(live, upstream):
    assert json.loads(live.run("get", "-o", "json").stdout)["upstreams"] == []
    assert "no managed upstreams yet" in live.run("get").output
    _set(live, upstream)
    names = [u["upstream"] for u in json.loads(live.run("get", "-o", "json").stdout)["upstreams"]]
    assert names == [upstream]


def test_set_prints_the_kong_writes_and_applies_them(live, upstream):
    result = _set(live, upstream)
    assert re.search(rf"create\s+{re.escape(CANARY)}\s+canary\s+– → 0", result.output)
    assert "split     100/0/0 → 90/5/5 (now)" in result.output
    weights = live.weights(upstream)
    assert weights[CANARY] == weights[BASELINE] and weights["10.0.0.1:80"] == 18 * weights[CANARY]


def test_set_dry_run_shows_the_writes_and_changes_nothing(live, upstream):
    before = live.weights(upstream)
    result = live.run("set", upstream, "95/2.5/2.5", *TARGET_ARGS, "--dry-run")
    assert result.exit_code == 0
    assert "planned Kong writes (dry run, nothing applied)" in result.output
    assert "(would be)" in result.output and CANARY in result.output
    assert live.weights(upstream) == before
    answer = json.loads(live.run("set", upstream, "95/2.5/2.5", *TARGET_ARGS, "--dry-run",
                                 "-o", "json").stdout)  # fmt: skip
    assert answer["dry_run"] is True and len(answer["writes"]) == 5


def test_set_with_lease_and_expect(live, upstream):
    _set(live, upstream)
    wrong = live.run("set", upstream, "80/10/10", "--expect", "95/2.5/2.5")
    assert wrong.exit_code == ExitCode.FAILED
    assert "409 expect_mismatch" in wrong.output
    right = live.run(
        "set", upstream, "80/10/10", "--expect", "90/5/5", "--lease", "10m", "-o", "json"
    )
    assert right.exit_code == 0
    answer = json.loads(right.stdout)
    assert answer["split"]["canary"] == 10.0
    assert answer["lease"]["epoch"] - answer_time(live, upstream) <= 600


def answer_time(live, upstream) -> float:
    return json.loads(live.run("get", upstream, "-o", "json").stdout)["upstreams"][0]["history"][
        -1
    ]["at"]


def test_a_refused_change_is_one_line_and_exit_1(live, upstream):
    result = live.run("set", upstream, "90/5/6")
    assert result.exit_code == ExitCode.FAILED
    assert result.output.strip().splitlines() == [
        "kong-canary set: 422 invalid_split: split: percentages must sum to exactly 100, got "
        "101 (field split)"
    ]


def test_a_badly_written_split_is_a_usage_error(live, upstream):
    result = live.run("set", upstream, "90/10")
    assert result.exit_code == ExitCode.USAGE
    assert "is not a split" in result.output
    assert live.run("ramp", upstream, "80/10/10", "--over", "soon", "--steps", "2").exit_code == 2


def test_rollback_and_promote(live, upstream):
    _set(live, upstream)
    result = live.run("rollback", upstream, "--reason", "5xx on canary")
    assert result.exit_code == 0 and "90/5/5 → 100/0/0 (now)" in result.output
    assert live.weights(upstream)[CANARY] == 0
    removed = live.run("rollback", upstream, "--remove")
    assert removed.exit_code == 0 and CANARY not in live.weights(upstream)
    _set(live, upstream)
    promoted = live.run("promote", upstream)
    assert promoted.exit_code == 0 and "→ 100/0/0 (now)" in promoted.output
    assert set(live.weights(upstream)) == {"10.0.0.1:80"}


def test_rollback_all_needs_yes_and_an_admin_token(live, upstream):
    _set(live, upstream)
    refused = live.run("rollback-all")
    assert refused.exit_code == ExitCode.USAGE and "--yes" in refused.output
    not_admin = live.run("rollback-all", "--yes", token=WRITE_TOKEN)
    assert not_admin.exit_code == ExitCode.AUTH and "403 forbidden" in not_admin.output
    assert live.weights(upstream)[CANARY] > 0
    done = live.run("rollback-all", "--yes", token=ADMIN_TOKEN)
    assert done.exit_code == 0, done.output
    assert re.search(rf"{upstream}\s+ok", done.output)
    assert live.weights(upstream)[CANARY] == 0


def test_ramp_follows_to_the_end_and_moves_kong(live, upstream):
    result = live.run("ramp", upstream, "80/10/10", "--over", "2s", "--steps", "2",
                      *TARGET_ARGS, "--poll", "0.5s")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"ramp RUNNING on {upstream} to 80/10/10"
    assert lines[1].startswith("id: ") and lines[2].startswith("cancel: kong-canary cancel ")
    progress = [line for line in lines[3:] if "%" in line]
    assert re.search(r"^\s+0% RUNNING\s+split 100/0/0 → 80/10/10\s+next step in \ds$", progress[0])
    assert any(re.search(r" 50% RUNNING\s+split 90/5/5 ", line) for line in progress)
    assert re.search(r"█{24} 100% SUCCEEDED split 80/10/10", progress[-1])
    weights = live.weights(upstream)
    assert weights["10.0.0.1:80"] == 8 * weights[CANARY]


def test_ramp_detached_then_cancelled(live, upstream):
    started = live.run("ramp", upstream, "80/10/10", "--over", "1h", "--steps", "4",
                       *TARGET_ARGS, "--detach", "-o", "json")  # fmt: skip
    assert started.exit_code == 0, started.output
    ramp = json.loads(started.stdout)
    assert ramp["status"] == "RUNNING" and ramp["target"]["canary"] == 10.0
    cancelled = live.run("cancel", ramp["id"], "--reason", "bad canary")
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.startswith(f"CANCELED {upstream}: split 100/0/0")
    assert live.run("cancel", "not-a-ramp").exit_code == ExitCode.FAILED


def test_connection_problems_have_their_own_exit_codes(live, upstream, tmp_path):
    no_token = live.run("get", upstream, token=None)
    assert no_token.exit_code == ExitCode.AUTH
    assert no_token.output.startswith("kong-canary get: no API token")
    bad = live.run("get", upstream, token="not-a-valid-token-at-all")
    assert bad.exit_code == ExitCode.AUTH and "401 unauthenticated" in bad.output
    read_only = live.run("rollback", upstream, token=READ_TOKEN)
    assert read_only.exit_code == ExitCode.AUTH and "403 forbidden" in read_only.output
    gone = live.run("get", upstream, "--url", "http://127.0.0.1:9", "--timeout", "2")
    assert gone.exit_code == ExitCode.UNREACHABLE
    assert len(gone.output.strip().splitlines()) == 1 and "cannot reach the sidecar" in gone.output
    token_file = tmp_path / "token"
    token_file.write_text(f"\n{READ_TOKEN}\n")
    from_file = live.run("get", upstream, "--token-file", str(token_file), token=None)
    assert from_file.exit_code == 0, from_file.output
    token_file.write_text("\n")
    empty = live.run("get", upstream, "--token-file", str(token_file), token=None)
    assert empty.exit_code == ExitCode.AUTH and "is empty" in empty.output


def test_an_error_with_o_json_also_prints_the_api_error(live):
    result = live.run("get", "no-such-upstream", "-o", "json")
    assert result.exit_code == ExitCode.FAILED
    body = json.loads(result.output[result.output.index("{") :])
    assert body["error"]["code"] == "unknown_upstream"


class _DropsFirstPolls(httpx.BaseTransport):
    """The network between the CLI and the real sidecar loses the first ramp polls (a
    sidecar restarting); everything else goes through."""

    def __init__(self, drops: int) -> None:
        self.real = httpx.HTTPTransport()
        self.drops = drops

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/v1/ramps/" in request.url.path and self.drops:
            self.drops -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return self.real.handle_request(request)


def test_following_a_ramp_survives_a_sidecar_that_stops_answering_for_a_while(
    live, upstream, capsys
):
    from rich.console import Console

    from sidecar.client.commands import Context, follow_ramp
    from sidecar.client.connection import SidecarClient

    client = SidecarClient(live.url, WRITE_TOKEN)
    started = client.call(
        "POST",
        f"/v1/upstreams/{upstream}/ramps",
        json={"split": {"stable": 80, "baseline": 10, "canary": 10}, "duration": 1, "steps": 1,
              "targets": {"canary": [CANARY], "baseline": [BASELINE]}},
    )  # fmt: skip
    client.http = httpx.Client(base_url=live.url, headers=client.http.headers,
                               transport=_DropsFirstPolls(2))  # fmt: skip
    try:
        final = follow_ramp(Context(client, "text", Console()), started, 0.2)
    finally:
        client.close()
    assert final["status"] == "SUCCEEDED"
    err = capsys.readouterr().err
    assert err.count("cannot reach the sidecar") == 2 and "retrying" in err
