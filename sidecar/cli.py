"""``kong-canary``: the command line. It only parses options and calls service functions."""

from __future__ import annotations

import click

from sidecar import __version__
from sidecar.settings import SettingsError, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kong-canary")
def main() -> None:
    """Canary traffic splitting for Kong Gateway, for Spinnaker and Kayenta."""


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


def _register() -> None:
    from sidecar.kayenta.cli import kayenta_commands
    from sidecar.kong_local.cli import kong_local
    from sidecar.spinnaker.cli import spinnaker_commands

    main.add_command(kong_local)
    main.add_command(kayenta_commands)
    main.add_command(spinnaker_commands)


_register()
