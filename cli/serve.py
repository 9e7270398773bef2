"""``redline serve``: the Serve application in the foreground, until Ctrl-C.

It reads ``configs/serve.yaml`` (the same file ``serve deploy`` takes): the first application's
``args`` are ``serving.app.build_app``'s options and its first deployment's options (autoscaling,
``max_ongoing_requests``, health checks, ...) are the deployment's. ``--port``/``--host`` set
Serve's HTTP proxy (once per Ray cluster: a Serve already running keeps its own).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from cli.state import CliState, make_console, open_store
from cluster.config import CONFIG_DIR

console = make_console()

APP_NAME = "redline"


def serve_settings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(args, deployment options)`` of the first application of a ``serve deploy`` file."""
    if not path.is_file():
        raise FileNotFoundError(f"serve config not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    apps = raw.get("applications") if isinstance(raw, dict) else None
    if not isinstance(apps, list) or not apps or not isinstance(apps[0], dict):
        raise ValueError(f"{path}: applications must be a list with at least one application")
    args = dict(apps[0].get("args") or {})
    deployments = apps[0].get("deployments") or []
    options = dict(deployments[0]) if deployments else {}
    options.pop("name", None)
    return args, options


def serve_cmd(
    ctx: typer.Context,
    port: int = typer.Option(8000, "--port", "-p", help="HTTP port of Serve's proxy."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    serve_config: Path = typer.Option(
        CONFIG_DIR / "serve.yaml", "--serve-config", help="The `serve deploy` file to read."
    ),
) -> None:
    """Serve the live ensemble over HTTP (API v1) until Ctrl-C; hot swaps on new champions."""
    from ray import serve

    from cluster.session import ensure_ray
    from serving.app import build_app, no_champions

    if not 0 < port < 65536:
        raise ValueError(f"--port must be between 1 and 65535; got {port}")
    state: CliState = ctx.obj
    store = open_store(state)  # creates and migrates the database before any replica opens it
    args, deployment = serve_settings(serve_config)
    args.setdefault("home", str(state.home))
    if "store_url" not in args and not store.champions.champions():
        # Replicas would fail Serve's health check (after three tries each) and Serve would say
        # only "Deploying application redline failed": say why before starting anything.
        raise ValueError(f"nothing to serve: {no_champions(store.url_for_display, state.home)}")
    ensure_ray()

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a supervisor) stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, stop)
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(
            build_app(args.pop("store_url", None), args.pop("home"), deployment=deployment, **args),
            name=APP_NAME,
            route_prefix="/",
        )
        console.print(
            f"Redline is serving at [bold]http://{host}:{port}[/] (API docs: /docs); Ctrl-C stops."
        )
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping Serve ...")
    finally:
        serve.shutdown()
