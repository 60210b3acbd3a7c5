"""``kong-canary kong-local``: run the Kong-compatible local Admin API server (parsing only)."""

from __future__ import annotations

import click

from sidecar.kong_local.configuration import DEFAULT_UNTRUSTED_LUA, UNTRUSTED_LUA_VALUES
from sidecar.kong_local.profiles import PROFILE_TABLE, PROFILES
from sidecar.kong_local.seed import DEFAULT_SEED, default_seed, load_seed
from sidecar.kong_local.server import serve_forever

__all__ = ["DEFAULT_SEED", "kong_local", "parse_bind", "parse_dns"]


def parse_bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_dns(values: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values:
        host, sep, ips = item.partition("=")
        if not sep or not host or not ips:
            raise click.BadParameter(f"expected HOST=IP[,IP…], got {item!r}")
        out[host] = [ip.strip() for ip in ips.split(",") if ip.strip()]
    return out


@click.command("kong-local")
@click.option(
    "--kong-version",
    "profile",
    type=click.Choice(PROFILES),
    default="3.9",
    show_default=True,
    help="Behaviour profile: which Kong (or Konnect) to answer like.",
)
@click.option(
    "--bind", default="127.0.0.1:8001", show_default=True, help="HOST:PORT (port 0 = any)."
)
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="YAML/JSON seed: upstreams with targets. Default: upstream 'orders'.",
)
@click.option("--empty", is_flag=True, help="Start with no upstreams at all.")
@click.option(
    "--dns",
    "dns",
    multiple=True,
    metavar="HOST=IP,IP",
    help="Resolution for hostname targets in /health (repeatable).",
)
@click.option("--rbac-token", default=None, help="EE RBAC: require this Kong-Admin-Token.")
@click.option("--workspace", "workspaces", multiple=True, help="EE workspace (repeatable).")
@click.option("--konnect-token", default=None, help="Konnect profile: required bearer token.")
@click.option("--control-plane-id", default="cp-local", show_default=True)
@click.option(
    "--test-controls", is_flag=True, help="Enable /_kong_local/ fault and state controls."
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cluster size: traditional profiles serve the other nodes' Admin APIs on the next "
    "ports; hybrid lists that many data planes; konnect that many nodes.",
)
@click.option(
    "--propagation-lag",
    "lag",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds the other nodes (data planes) see each write late.",
)
@click.option(
    "--untrusted-lua",
    type=click.Choice(UNTRUSTED_LUA_VALUES),
    default=DEFAULT_UNTRUSTED_LUA,
    show_default=True,
    help="kong.conf untrusted_lua, as GET / shows it (off: serverless code cannot run).",
)
@click.option(
    "--disable-plugin",
    "disabled_plugins",
    multiple=True,
    metavar="NAME",
    help="A bundled plugin left out of kong.conf 'plugins', e.g. post-function (repeatable).",
)
@click.option("--quiet", is_flag=True, help="Do not log every request (benchmarks).")
def kong_local(
    profile: str,
    bind: str,
    seed_file: str | None,
    empty: bool,
    dns: tuple[str, ...],
    rbac_token: str | None,
    workspaces: tuple[str, ...],
    konnect_token: str | None,
    control_plane_id: str,
    test_controls: bool,
    nodes: int,
    lag: float,
    untrusted_lua: str,
    disabled_plugins: tuple[str, ...],
    quiet: bool,
) -> None:
    """Run a Kong-compatible Admin API server in memory (for local runs and tests)."""
    host, port = parse_bind(bind)
    seed = None if empty else (load_seed(seed_file) if seed_file else default_seed())
    version = PROFILE_TABLE[profile].version

    def banner(url: str) -> None:
        click.echo(
            f"kong-local: Kong-compatible local Admin API server, NOT a real Kong "
            f"(profile {profile}, behaves like Kong {version}) listening on {url}",
            err=False,
        )

    def other_nodes(urls: list[str]) -> None:
        click.echo(f"kong-local: the cluster's other nodes ({lag:g} s behind): {' '.join(urls)}")

    serve_forever(
        profile,
        host=host,
        port=port,
        on_ready=banner,
        on_nodes=other_nodes,
        nodes=nodes,
        lag=lag,
        seed=seed,
        rbac_token=rbac_token,
        workspaces=workspaces,
        konnect_token=konnect_token,
        control_plane_id=control_plane_id,
        dns=parse_dns(dns),
        test_controls=test_controls,
        configuration={"untrusted_lua": untrusted_lua, "disabled_plugins": disabled_plugins},
        quiet=quiet,
    )
