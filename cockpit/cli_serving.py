"""Headless serving commands: `deploy JOB|gs://...`, `endpoints`, `undeploy ENDPOINT`, `predict`.

Argument parsing only needs argparse (`add_parsers`, imported for --help); the commands call
cockpit.serving.ServingService, the same service the TUI's Jobs section uses. Which project and region:
`--preset` (default: the `cloud` preset), then --project/--region, then GOOGLE_CLOUD_PROJECT.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from cockpit.errors import EXIT_CANCELLED, EXIT_COST, EXIT_OK, CockpitError

COMMANDS = ("deploy", "endpoints", "undeploy", "predict")


def add_parsers(sub: Any, add_cloud_target: Any, add_set: Any) -> None:
    """The four subcommands, on cockpit.cli's subparsers."""
    p = sub.add_parser("deploy", help="serve a finished job's model on a Vertex AI endpoint (bills per hour)")
    p.add_argument("target", metavar="JOB|gs://.../model", help="a SUCCEEDED job id, or an exported model dir")
    p.add_argument("--endpoint", default="", help="endpoint display name, created or reused (default psa-grader)")
    p.add_argument("--machine-type", default="", help="serving machine (default n1-standard-4)")
    p.add_argument("--accelerator", default="", help="GPU type, e.g. NVIDIA_TESLA_T4 (default: none)")
    p.add_argument("--accelerator-count", type=int, default=0, help="GPUs per replica (default 1 with a GPU)")
    p.add_argument("--min-replicas", type=int, default=1, help="replicas always running, billed while idle")
    p.add_argument("--max-replicas", type=int, default=0, help="autoscaling ceiling (default: min)")
    p.add_argument("--image", default="", help="serving image URI to use as is (skips the build)")
    p.add_argument("--tag", default="", help="serving image tag (default: the git commit)")
    p.add_argument("--no-build", action="store_true", help="do not build/push the serving image")
    p.add_argument("--yes", "-y", action="store_true", help="deploy without asking (scripts)")
    add_cloud_target(p)
    add_set(p)
    p = sub.add_parser("endpoints", help="this tool's Vertex AI endpoints and what they cost per hour")
    add_cloud_target(p)
    add_set(p)
    p = sub.add_parser("undeploy", help="undeploy every model of an endpoint (stops its billing)")
    p.add_argument("endpoint", help="endpoint id (from psa-cockpit endpoints)")
    add_cloud_target(p)
    add_set(p)
    p = sub.add_parser("predict", help="grade one card on an endpoint (--endpoint) or a local server (--local)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint", help="Vertex AI endpoint id")
    where.add_argument("--local", metavar="URL", help="a running python -m core.serve, e.g. http://127.0.0.1:8080")
    p.add_argument("front", help="front scan (JPEG/PNG)")
    p.add_argument("back", help="back scan (JPEG/PNG)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_cloud_target(p)
    add_set(p)


def serving_service(args: Any) -> Any:
    """ServingService for --preset (default cloud) with --project/--region/GOOGLE_CLOUD_PROJECT."""
    from cockpit.presets import validate_preset
    from cockpit.serving import service_for

    cfg = validate_preset(getattr(args, "preset", None) or "cloud", list(getattr(args, "set", None) or []))
    return service_for(cfg, getattr(args, "project", None), getattr(args, "region", None))


def confirm(question: str) -> bool:
    """Ask on the terminal; without one, refuse (a script must say --yes)."""
    if not sys.stdin or not sys.stdin.isatty():
        raise CockpitError("deploying starts hourly billing: pass --yes to deploy without a terminal to ask on",
                           EXIT_COST)
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_deploy(args: Any) -> int:
    from cockpit.serving import (IDLE_WARNING, cost_per_hour, default_image, deploy_with_image,
                                 model_uri_for)

    service = serving_service(args)
    plan = service.plan(model_uri_for(args.target, service), endpoint=args.endpoint,
                        machine_type=args.machine_type, accelerator=args.accelerator,
                        accelerator_count=args.accelerator_count, min_replicas=args.min_replicas,
                        max_replicas=args.max_replicas)
    uri = args.image or default_image(service, args.tag)
    print(plan.cost_line())
    print(f"warning: {IDLE_WARNING}")
    if not args.yes and not confirm("deploy? [y/N] "):
        print("not deployed")
        return EXIT_CANCELLED
    info = deploy_with_image(service, plan, uri, lambda line: print(line, flush=True),
                             build=not (args.image or args.no_build))
    print(f"deployed to endpoint {info.id} ({info.name}): {cost_per_hour(info.hourly_cost_usd)} while deployed")
    print(f"predict: psa-cockpit predict --endpoint {info.id} FRONT BACK")
    print(f"stop billing: psa-cockpit undeploy {info.id}")
    return EXIT_OK


def endpoints_table(endpoints: list) -> str:
    from cockpit.serving import ENDPOINT_COLUMNS, endpoint_row

    rows = [ENDPOINT_COLUMNS, *(endpoint_row(e) for e in endpoints)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def cmd_endpoints(args: Any) -> int:
    endpoints = serving_service(args).list()
    if not endpoints:
        print("no endpoints")
        return EXIT_OK
    print(endpoints_table(endpoints))
    billing = [e for e in endpoints if e.deployed]
    if billing:
        known = [e.hourly_cost_usd for e in billing if e.hourly_cost_usd is not None]
        print(f"{len(billing)} endpoint(s) with a deployed model bill about ${sum(known):,.2f}/hour even when "
              "idle; stop one with: psa-cockpit undeploy ID")
    return EXIT_OK


def cmd_undeploy(args: Any) -> int:
    service = serving_service(args)
    count = len(service.get(args.endpoint).deployed)
    info = service.undeploy(args.endpoint)  # refuses (one line) when nothing is deployed
    print(f"endpoint {info.id}: undeployed {count} model(s); it no longer bills "
          "(the empty endpoint is kept for the next deploy)")
    return EXIT_OK


def cmd_predict(args: Any) -> int:
    import json

    from core.predict import format_prediction

    if args.local:
        from cockpit.serving import predict_local

        result = predict_local(args.local, args.front, args.back)
    else:
        result = serving_service(args).predict(args.endpoint, args.front, args.back)
    print(json.dumps(result, indent=2) if args.json else format_prediction(result))
    return EXIT_OK


def dispatch(args: argparse.Namespace) -> int:
    return {"deploy": cmd_deploy, "endpoints": cmd_endpoints, "undeploy": cmd_undeploy,
            "predict": cmd_predict}[args.command](args)
