"""``kong-canary``: the command line. It only parses options and calls service functions."""

from __future__ import annotations

import importlib

import click

from sidecar import __version__
from sidecar.logs import configure_logging
from sidecar.settings import SettingsError, cli_log_level, load_settings


class LazyGroup(click.Group):
    """Subcommands imported only when used. ``serve`` must run before anything imports
    prometheus_client (it fixes its multiprocess mode at import), and the other commands
    pull in the Kayenta and gateway code that does."""

    lazy: dict[str, str] = {
        "kong-local": "sidecar.kong_local.cli:kong_local",
        "kayenta": "sidecar.kayenta.cli:kayenta_commands",
        "preflight": "sidecar.kayenta.preflight_cli:preflight",
        "spinnaker": "sidecar.spinnaker.cli:spinnaker_commands",
        # the on-call engineer's client of the sidecar's API (sidecar.client)
        "get": "sidecar.client.commands:get",
        "set": "sidecar.client.commands:set_split",
        "ramp": "sidecar.client.commands:ramp",
        "rollback": "sidecar.client.commands:rollback",
        "promote": "sidecar.client.commands:promote",
        "rollback-all": "sidecar.client.commands:rollback_all",
        "cancel": "sidecar.client.commands:cancel",
        "watch": "sidecar.client.watch:watch",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, _, attribute = self.lazy[name].partition(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kong-canary")
def main() -> None:
    """Canary traffic splitting for Kong Gateway, for Spinnaker and Kayenta."""
    # JSON lines on stderr: several commands print their result on stdout. ``serve``
    # re-installs the handler on stdout with the level and secrets of its settings.
    configure_logging(cli_log_level(), stream="stderr")


@main.command()
@click.option("--bind", help="HOST:PORT to listen on [KONG_CANARY_BIND; 127.0.0.1:8080]")
@click.option("--workers", type=int, help="gunicorn worker processes [KONG_CANARY_WORKERS; 2]")
@click.option("--kong-admin-url", help="Kong Admin API URL; none = embedded local server")
@click.option("--public-url", help="Absolute base URL handed to Orca in links")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML settings")
@click.option(
    "--kong-local-profile",
    help="Profile of the embedded server when no Kong is given (2.8, 3.4, 3.9, konnect, dbless)",
)
def serve(
    bind: str | None,
    workers: int | None,
    kong_admin_url: str | None,
    public_url: str | None,
    config_file: str | None,
    kong_local_profile: str | None,
) -> None:
    """Run the sidecar under gunicorn."""
    try:
        settings = load_settings(
            config_file=config_file,
            overrides={
                "bind": bind,
                "workers": workers,
                "kong_admin_url": kong_admin_url,
                "public_url": public_url,
                "kong_local_profile": kong_local_profile,
            },
        )
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    from sidecar.serve import run

    run(settings)
