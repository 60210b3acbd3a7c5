"""``kong-canary kayenta sync`` against a local Kayenta that enforces Kayenta's validation.

Sources for the server's rules: ``CanaryConfigController.java`` (name pattern, applications,
POST/PUT existence checks), the indexed storage services' ``checkForDuplicateCanaryConfig``
and ``CanaryConfigIndex.getCanaryConfigSummarySet`` (spinnaker/kayenta); details in
``tests/kayenta/kayenta_server.py``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from sidecar.kayenta.cli import kayenta_commands
from sidecar.kayenta.library import (
    DEFAULT_LIBRARY_DIR,
    LIBRARY_ENV,
    find_library_dir,
    load_rendered,
)
from sidecar.kayenta.sync import SyncError, differences, load_configs
from tests.kayenta.kayenta_server import LocalKayenta, serve_kayenta

LIBRARY = load_rendered(DEFAULT_LIBRARY_DIR)


@pytest.fixture
def kayenta() -> Iterator[tuple[str, LocalKayenta]]:
    ticks = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))
    with serve_kayenta(LocalKayenta(accounts=("mem", "other"), clock=lambda: next(ticks))) as s:
        yield s


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(kayenta_commands, ["sync", "--url", url, *args])


def stored(server: LocalKayenta, account: str = "mem") -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in server.stores[account].values()}


@pytest.fixture
def library_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(DEFAULT_LIBRARY_DIR / "configs", folder)
    return folder


def test_first_run_creates_every_config_and_second_run_writes_nothing(kayenta):
    url, server = kayenta
    first = run(url)
    assert first.exit_code == 0, first.output
    assert sorted(stored(server)) == sorted(LIBRARY)
    assert [m for m, _ in server.writes()] == ["POST"] * len(LIBRARY)
    assert f"kayenta sync: {len(LIBRARY)} created, 0 updated, 0 unchanged, 0 failed" in (
        first.output
    )
    for name, config in stored(server).items():
        assert differences(LIBRARY[name], config) == []  # what went in is what the file says
        assert config["applications"] == ["ad-hoc"]
    before = len(server.writes())
    second = run(url)
    assert second.exit_code == 0, second.output
    assert len(server.writes()) == before
    assert f"0 created, 0 updated, {len(LIBRARY)} unchanged" in second.output
    assert all(line.startswith("unchanged") for line in second.output.splitlines()[:-1])


def test_a_changed_file_is_put_under_the_same_id_keeping_its_creation_time(kayenta, library_copy):
    url, server = kayenta
    assert run(url, "--dir", str(library_copy)).exit_code == 0
    before = stored(server)["kong-3x-variant-label"]
    path = library_copy / "kong-3x-variant-label.json"
    doc = json.loads(path.read_text())
    doc["metrics"][1]["analysisConfigurations"]["canary"]["effectSize"]["allowedIncrease"] = 1.3
    path.write_text(json.dumps(doc))
    result = run(url, "--dir", str(library_copy))
    assert result.exit_code == 0, result.output
    assert server.writes()[-1] == ("PUT", f"/canaryConfig/{before['id']}")
    assert len([w for w in server.writes() if w[0] == "PUT"]) == 1
    after = stored(server)["kong-3x-variant-label"]
    assert after["id"] == before["id"]
    assert after["createdTimestamp"] == before["createdTimestamp"]
    assert after["updatedTimestamp"] > before["updatedTimestamp"]
    assert after["metrics"][1]["analysisConfigurations"]["canary"]["effectSize"] == {
        "measure": "meanRatio",
        "allowedIncrease": 1.3,
    }
    line = next(x for x in result.output.splitlines() if "kong-3x-variant-label" in x)
    assert line.startswith("updated") and "$.metrics[1].analysisConfigurations" in line


def test_dry_run_only_reads(kayenta, library_copy):
    url, server = kayenta
    (library_copy / "app-otel-http-server.json").unlink()
    assert run(url, "--dir", str(library_copy)).exit_code == 0
    shutil.copy(DEFAULT_LIBRARY_DIR / "configs" / "app-otel-http-server.json", library_copy)
    doc = json.loads((library_copy / "kong-2x-variant-label.json").read_text())
    doc["description"] = "edited"
    (library_copy / "kong-2x-variant-label.json").write_text(json.dumps(doc))
    writes = len(server.writes())
    result = run(url, "--dir", str(library_copy), "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.output
    assert len(server.writes()) == writes
    out = json.loads(result.output)
    actions = {r["name"]: (r["action"], r["done"]) for r in out["results"]}
    assert actions["app-otel-http-server"] == ("create", False)
    assert actions["kong-2x-variant-label"] == ("update", False)
    assert out["summary"] == {"create": 1, "update": 1, "unchanged": len(LIBRARY) - 2, "failed": 0}
    by_name = {r["name"]: r for r in out["results"]}
    assert by_name["kong-2x-variant-label"]["changes"] == ["$.description"]


def test_application_scopes_names_so_another_apps_config_is_left_alone(kayenta):
    """Names are unique per application: 'orders' gets its own copy of each config."""
    url, server = kayenta
    assert run(url).exit_code == 0  # the library's own application, "ad-hoc"
    ad_hoc = {c["id"] for c in server.stores["mem"].values()}
    result = run(url, "--application", "orders")
    assert result.exit_code == 0, result.output
    assert ("GET", "/canaryConfig?application=orders") in server.calls
    orders = [c for c in server.stores["mem"].values() if c["applications"] == ["orders"]]
    assert sorted(c["name"] for c in orders) == sorted(LIBRARY)
    assert ad_hoc <= {c["id"] for c in server.stores["mem"].values()}
    again = run(url, "--application", "orders").output.splitlines()
    assert sum(line.startswith("unchanged") for line in again) == len(LIBRARY)


def test_configuration_account_is_passed_and_an_unknown_one_fails_with_kayentas_message(kayenta):
    url, server = kayenta
    assert run(url, "--configuration-account", "other").exit_code == 0
    assert sorted(stored(server, "other")) == sorted(LIBRARY) and stored(server) == {}
    assert all("configurationAccountName=other" in path for _, path in server.calls)
    result = run(url, "--configuration-account", "nope")
    assert result.exit_code == 1
    assert "400" in result.output and "Unable to resolve account nope." in result.output


def test_a_refused_write_fails_that_config_only_and_exits_1(kayenta):
    url, server = kayenta
    server.refuse_names.add("kong-2x-variant-label")
    result = run(url)
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "kong-2x-variant-label" in x)
    assert line.startswith("failed") and "400" in line and "Unable to store" in line
    assert sorted(stored(server)) == sorted(set(LIBRARY) - {"kong-2x-variant-label"})
    assert "1 failed" in result.output.splitlines()[-1]


def test_a_stored_config_in_one_of_our_applications_is_updated_not_duplicated(
    kayenta, library_copy
):
    url, server = kayenta
    theirs = {**LIBRARY["app-micrometer-http-server"], "applications": ["payments"]}
    with httpx.Client(base_url=url) as http:
        their_id = http.post("/canaryConfig", json=theirs).json()["canaryConfigId"]
    for path in library_copy.glob("*.json"):
        if path.stem != "app-micrometer-http-server":
            path.unlink()
    doc = json.loads((library_copy / "app-micrometer-http-server.json").read_text())
    doc["applications"] = ["ad-hoc", "payments"]
    (library_copy / "app-micrometer-http-server.json").write_text(json.dumps(doc))
    result = run(url, "--dir", str(library_copy))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"updated       app-micrometer-http-server {their_id}")
    assert [c["applications"] for c in server.stores["mem"].values()] == [["ad-hoc", "payments"]]


def test_two_stored_configs_matching_one_name_fail_that_config(kayenta, library_copy):
    url, server = kayenta
    with httpx.Client(base_url=url) as http:
        for app in ("ad-hoc", "payments"):
            body = {**LIBRARY["kong-3x-variant-label"], "applications": [app]}
            assert http.post("/canaryConfig", json=body).status_code == 200
    doc = json.loads((library_copy / "kong-3x-variant-label.json").read_text())
    doc["applications"] = ["ad-hoc", "payments"]
    (library_copy / "kong-3x-variant-label.json").write_text(json.dumps(doc))
    result = run(url, "--dir", str(library_copy))
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "kong-3x-variant-label" in x)
    assert line.startswith("failed") and "several stored configs match" in line
    assert len([c for c in server.stores["mem"].values()
                if c["name"] == "kong-3x-variant-label"]) == 2  # fmt: skip


def test_invalid_local_configs_stop_the_sync_before_any_call(kayenta, library_copy):
    url, server = kayenta
    shutil.copy(DEFAULT_LIBRARY_DIR / "invalid" / "name-with-space.json", library_copy)
    result = run(url, "--dir", str(library_copy))
    assert result.exit_code == 1
    assert "invalid:" in result.output and "$.name" in result.output
    assert server.calls == []


def test_unreachable_kayenta_exits_1(tmp_path):
    with serve_kayenta() as (url, _):
        pass  # stopped: nothing listens there any more
    result = run(url, "--timeout", "2")
    assert result.exit_code == 1
    assert "cannot reach Kayenta" in result.output


def test_load_configs_reports_every_problem_at_once(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({**LIBRARY["kong-3x-variant-label"]}))
    (tmp_path / "b.json").write_text(json.dumps({**LIBRARY["kong-3x-variant-label"]}))
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(SyncError) as caught:
        load_configs(tmp_path)
    assert len(caught.value.problems) == 2
    assert any("is also used by" in p for p in caught.value.problems)
    assert any("cannot read JSON" in p for p in caught.value.problems)
    with pytest.raises(SyncError, match=r"no \*\.json"):
        load_configs(tmp_path / "missing")
    with pytest.raises(SyncError, match="application"):
        load_configs(DEFAULT_LIBRARY_DIR / "configs", " ")


def test_differences_ignore_what_kayenta_adds_but_not_what_people_change():
    local = LIBRARY["kong-3x-variant-label"]
    remote = json.loads(json.dumps(local))
    remote.update(id="x", createdTimestamp=1, updatedTimestampIso="2024-01-01T00:00:00Z")
    for metric in remote["metrics"]:
        metric["query"]["serviceType"] = "prometheus"
        metric["query"]["labelBindings"] = []
    remote["classifier"]["groupWeights"] = {"errors": 60.0, "latency": 40.0}
    assert differences(local, remote) == []
    remote["metrics"][0]["analysisConfigurations"]["canary"]["muted"] = True
    remote["templates"] = {"t": "x"}
    assert differences(local, remote) == [
        "$.metrics[0].analysisConfigurations.canary.muted",
        "$.templates.t",
    ]
    assert differences({"critical": True}, {"critical": 1}) == ["$.critical"]
    assert differences({"m": [1, 2]}, {"m": [1]}) == ["$.m"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "", "applications": ["a"]}, "Canary config must specify a name."),
        ({"name": "x"}, "Canary config must specify at least one application."),
        ({"name": "x y", "applications": ["a"]}, "Canary config cannot be named 'x y'."),
    ],
)
def test_the_local_kayenta_enforces_the_controllers_validation(body, message):
    with serve_kayenta() as (url, server), httpx.Client(base_url=url) as http:
        answer = http.post("/canaryConfig", json=body)
        assert answer.status_code == 400
        assert answer.json()["message"].startswith(message)
        assert (
            http.put("/canaryConfig/nope", json={"name": "x", "applications": ["a"]}).json()[
                "message"
            ]
            == "Canary config 'nope' does not exist."
        )
        assert http.get("/canaryConfig/nope").status_code == 404
        assert http.post("/canaryConfig", content=b"{}").status_code == 415
        assert server.stores[server.accounts[0]] == {}


def test_the_local_kayenta_allows_commas_in_names_like_the_real_pattern():
    """``[A-Z,a-z,0-9,\\-,\\_]*`` lists commas literally, so Kayenta accepts 'a,b'."""
    with serve_kayenta() as (url, _), httpx.Client(base_url=url) as http:
        answer = http.post("/canaryConfig", json={"name": "a,b", "applications": ["x"]})
        assert answer.status_code == 200
        config_id = answer.json()["canaryConfigId"]
        body = {"id": config_id, "name": "c", "applications": ["x"]}
        again = http.post("/canaryConfig", json=body)
        assert again.json()["message"] == f"Canary config '{config_id}' already exists."


def test_without_dir_the_library_is_found_where_the_image_says(kayenta, tmp_path):
    """The image sets KONG_CANARY_KAYENTA_LIBRARY (Dockerfile); an installed package has no
    source tree next to it, so that variable is what `kayenta sync` and preflight follow."""
    url, server = kayenta
    library = tmp_path / "kayenta-configs"
    (library / "configs").mkdir(parents=True)
    shutil.copy(DEFAULT_LIBRARY_DIR / "library.yaml", library)
    shutil.copy(DEFAULT_LIBRARY_DIR / "configs" / "app-otel-http-server.json", library / "configs")
    assert find_library_dir({LIBRARY_ENV: str(library)}) == library
    assert find_library_dir({}) == DEFAULT_LIBRARY_DIR  # a source checkout
    result = CliRunner().invoke(
        kayenta_commands, ["sync", "--url", url], env={LIBRARY_ENV: str(library)}
    )
    assert result.exit_code == 0, result.output
    assert sorted(stored(server)) == ["app-otel-http-server"]
