"""``kong-canary spinnaker``: render the Spinnaker artefacts for a sidecar URL."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sidecar.spinnaker.generate import (
    DEFAULT_DIR,
    RENDER_COMMAND,
    SourceError,
    stale_files,
    write_all,
)


@click.group("spinnaker")
def spinnaker_commands() -> None:
    """Spinnaker: preconfigured webhook stages and MPT v2 pipeline templates."""


@spinnaker_commands.command("render")
@click.option(
    "--sidecar-url",
    default="http://kong-canary.spinnaker:8080",
    show_default=True,
    help="Base URL Orca uses to reach the sidecar (also sets the URL restrictions).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Directory to write orca-local*.yml, templates/ and samples/ into.",
)
@click.option(
    "--source",
    "source_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Directory holding source.yaml.",
)
@click.option("--check", is_flag=True, help="Only report stale files in --out; exit 1 if any.")
def render(sidecar_url: str, out_dir: Path, source_dir: Path, check: bool) -> None:
    """Write the orca-local webhooks, templates and sample configs from source.yaml."""
    try:
        if check:
            stale = stale_files(out_dir, sidecar_url, source_dir)
            for name in stale:
                click.echo(f"out of date: {name}", err=True)
            if stale:
                click.echo(f"run: {RENDER_COMMAND}", err=True)
                sys.exit(1)
            return
        for path in write_all(out_dir, sidecar_url, source_dir):
            click.echo(str(path))
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
