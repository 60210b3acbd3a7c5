"""``kong-canary kayenta``: regenerate the config library and judge canaries offline."""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import asdict
from pathlib import Path

import click

from sidecar.kayenta.judge import JudgeConfigError, judge, stage_passes
from sidecar.kayenta.library import (
    DEFAULT_LIBRARY_DIR,
    RENDER_COMMAND,
    find_library_dir,
    stale_files,
    write_library,
)
from sidecar.kayenta.metricsets import pairs_from_json
from sidecar.kayenta.rest import KayentaClient, KayentaError
from sidecar.kayenta.sync import SyncError, SyncResult, load_configs, sync
from sidecar.kayenta.validate import validate_config
from sidecar.outbound import Outbound

_FILE = click.Path(exists=True, dir_okay=False)


def _jsonable(value: object) -> object:
    """NaN/Inf as Kayenta writes them ("NaN" strings), so the output stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@click.group("kayenta")
def kayenta_commands() -> None:
    """Kayenta canary configs: render the library, validate configs, judge offline."""


@kayenta_commands.command("render")
@click.option(
    "--library",
    "library_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_LIBRARY_DIR,
    show_default=True,
)
@click.option("--check", is_flag=True, help="Only report files that differ; exit 1 if any.")
def render(library_dir: Path, check: bool) -> None:
    """Regenerate configs/*.json from library.yaml."""
    if check:
        stale = stale_files(library_dir)
        for name in stale:
            click.echo(f"out of date: configs/{name}", err=True)
        if stale:
            click.echo(f"run: {RENDER_COMMAND}", err=True)
            sys.exit(1)
        return
    for path in write_library(library_dir):
        click.echo(str(path))


@kayenta_commands.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check canary configs against the strict schema; errors name the JSON path."""
    failed = False
    for path in files:
        errors = validate_config(json.loads(path.read_text(encoding="utf-8")))
        for err in errors:
            click.echo(f"{path}: {err}", err=True)
        failed = failed or bool(errors)
    sys.exit(1 if failed else 0)


@kayenta_commands.command("judge")
@click.option(
    "--config", "config_path", required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--pairs",
    "pairs_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="MetricSetPair list JSON, as GET /metricSetPairList/{id} returns it.",
)
@click.option("--pass", "pass_threshold", type=float, default=95.0, show_default=True)
@click.option("--marginal", "marginal_threshold", type=float, default=75.0, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Noise seed (constant series)."
)
def judge_command(
    config_path: Path, pairs_path: Path, pass_threshold: float, marginal_threshold: float, seed: int
) -> None:
    """Preview NetflixACAJudge's verdict for stored metric-set pairs; exit 1 unless it passes."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    pairs = pairs_from_json(json.loads(pairs_path.read_text(encoding="utf-8")))
    try:
        result = judge(config, pairs, pass_threshold, marginal_threshold, random.Random(seed))
    except (JudgeConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    passed = stage_passes(result.score, pass_threshold, marginal_threshold)
    click.echo(json.dumps(_jsonable({**asdict(result), "stagePasses": passed}), indent=2))
    sys.exit(0 if passed else 1)


_DONE = {"create": "created", "update": "updated"}
_PLANNED = {"create": "would create", "update": "would update"}


def _sync_line(result: SyncResult, dry_run: bool) -> str:
    verb = (_PLANNED if dry_run else _DONE).get(result.action, result.action)
    line = f"{verb:<13} {result.name}"
    if result.id:
        line += f" {result.id}"
    if result.changes:
        line += f" (differs at {', '.join(result.changes[:5])}"
        line += f", +{len(result.changes) - 5} more)" if len(result.changes) > 5 else ")"
    if result.error:
        line += f": {result.error}"
    return line


@kayenta_commands.command("sync")
@click.option("--url", required=True, help="Kayenta's base URL, e.g. http://kayenta:8090")
@click.option(
    "--application",
    help="Store every config under this Spinnaker application (default: each file's own).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of canary-config JSON files [default: the library's configs/]",
)
@click.option("--configuration-account", help="Kayenta configurationAccountName (default: first)")
@click.option("--dry-run", is_flag=True, help="Compare and report; write nothing.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per call.")
@click.option("--ca-bundle", type=_FILE, help="CA certificates to trust for an https URL.")
@click.option("--client-cert", type=_FILE, help="Client certificate (mTLS), with --client-key.")
@click.option("--client-key", type=_FILE, help="Client certificate's private key.")
@click.option("--no-tls-verify", is_flag=True, help="Do not verify Kayenta's certificate.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def sync_command(
    url: str,
    application: str | None,
    directory: Path | None,
    configuration_account: str | None,
    dry_run: bool,
    timeout: float,
    ca_bundle: str | None,
    client_cert: str | None,
    client_key: str | None,
    no_tls_verify: bool,
    output: str,
) -> None:
    """Upsert canary configs into Kayenta by name (POST new, PUT changed, skip equal).

    Exit status: 0 when Kayenta holds every config (or, with --dry-run, the plan was made);
    1 when a config is invalid, Kayenta is unreachable or refused a write (the other configs
    are still synced). One line per config: created, updated, unchanged or failed.
    """
    folder = directory or find_library_dir() / "configs"
    try:
        configs = load_configs(folder, application)
    except SyncError as exc:
        for problem in exc.problems:
            click.echo(f"invalid: {problem}", err=True)
        sys.exit(1)
    if (client_cert is None) != (client_key is None):
        raise click.UsageError("give --client-cert and --client-key together, or neither")
    outbound = Outbound.every_phase(
        timeout,
        ca_bundle=ca_bundle,
        client_cert=client_cert,
        client_key=client_key,
        tls_verify=not no_tls_verify,
    )
    client = KayentaClient.connect(url, outbound, configuration_account=configuration_account)
    try:
        results = sync(client, configs, dry_run=dry_run)
    except KayentaError as exc:
        click.echo(f"kayenta sync failed: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    counts = {a: sum(r.action == a for r in results) for a in ("create", "update", "unchanged")}
    failed = sum(r.action == "failed" for r in results)
    if output == "json":
        doc = {"url": url, "dry_run": dry_run, "results": [r.to_dict() for r in results],
               "summary": {**counts, "failed": failed}}  # fmt: skip
        click.echo(json.dumps(doc, indent=2))
    else:
        for result in results:
            click.echo(_sync_line(result, dry_run), err=result.action == "failed")
        made, changed = ("to create", "to update") if dry_run else ("created", "updated")
        note = " (dry run: nothing written)" if dry_run else ""
        click.echo(
            f"kayenta sync: {counts['create']} {made}, {counts['update']} {changed}, "
            f"{counts['unchanged']} unchanged, {failed} failed{note}"
        )
    sys.exit(1 if failed else 0)
