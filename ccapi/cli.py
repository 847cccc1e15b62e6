"""`ccapi serve | sim`: argument parsing only."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from pydantic import ValidationError


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ccapi.app import create_app
    from ccapi.catalog.catalog import CatalogError
    from ccapi.config import load_settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = load_settings(args.config, **overrides)
        app = create_app(settings)
    except (ValidationError, CatalogError, ValueError) as exc:
        print(f"ccapi: cannot start: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if settings.master_key is None:
        logging.getLogger("ccapi").warning(
            "CCAPI_MASTER_KEY is not set: every authenticated route answers 401 until it is."
        )
    # Uvicorn re-raises the stop signal once it has drained and shut down; a
    # graceful stop is a success, so let that end in exit code 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )
    return 0


def _sim(args: argparse.Namespace) -> int:
    from ccapi.sim.server import run

    run(args.host or "127.0.0.1", args.port or 9100, args.config)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccapi", description="CCAPI: a unified AI API gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    sim = commands.add_parser("sim", help="run the upstream simulator (OpenAI, Anthropic, Gemini wire formats)")
    for sub in (serve, sim):
        sub.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
        sub.add_argument("--port", type=int, default=None, help="listen port (gateway 8000, simulator 9100)")
        sub.add_argument("--config", default=None, help="YAML config file")
    args = parser.parse_args(argv)
    handlers = {"serve": _serve, "sim": _sim}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
