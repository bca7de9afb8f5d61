"""`make bench`: the benchmarks, each beside its baseline measured in the same run."""

import argparse
import asyncio
import logging
import os

from tests.benchmarks import (
    activity,
    faults,
    gateway,
    listing,
    pipeline,
    relay,
    stream,
    updates,
    widget,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1000, help="tickets per pipeline run")
    parser.add_argument(
        "--creators",
        type=int,
        default=32,
        help="the pipeline's concurrent creators (as the gateway suite's 32 requests in "
        "flight; a group commit holds at most this many creates)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="concurrent widget requests, service layer"
    )
    parser.add_argument("--paced-rate", type=float, default=50.0, help="tickets/s, latency run")
    parser.add_argument("--update-seconds", type=float, default=5.0, help="per update run")
    parser.add_argument("--events", type=int, default=5000, help="activity-log backlog size")
    parser.add_argument("--rebuild-events", type=int, default=100_000, help="events to rebuild")
    parser.add_argument(
        "--widget-requests", type=int, default=5000, help="widget requests per burst run"
    )
    parser.add_argument(
        "--widget-paced-rate",
        type=float,
        default=None,
        help="requests/s, widget latency run (default: half the burst's rate)",
    )
    parser.add_argument(
        "--widget-service-layer-requests",
        type=int,
        default=500,
        help="requests through the HTTP endpoint's handler",
    )
    parser.add_argument(
        "--listing-sizes",
        default=os.environ.get(listing.SIZES_ENV),
        help="tickets in the list's workspace, comma-separated (default 100000,1000000; "
        f"or ${listing.SIZES_ENV})",
    )
    parser.add_argument("--listing-runs", type=int, default=200, help="runs per list query")
    parser.add_argument(
        "--listing-seconds",
        type=float,
        default=6.0,
        help="time budget per list query (a slow one stops there, after at least 10 runs)",
    )
    parser.add_argument(
        "--listing-http",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the default list and a search through ticket-core's HTTP API",
    )
    parser.add_argument(
        "--listing-explain",
        action="store_true",
        help="print the plan of each list query that misses the target",
    )
    parser.add_argument("--relay-rows", type=int, default=20_000, help="outbox backlog size")
    parser.add_argument("--gateway-requests", type=int, default=2000, help="creates per run")
    parser.add_argument(
        "--gateway-concurrency", type=int, default=32, help="creates in flight, gateway burst"
    )
    parser.add_argument("--stream-patches", type=int, default=300, help="PATCHes, PATCH → SSE")
    parser.add_argument("--stream-rate", type=float, default=20.0, help="PATCHes/s, PATCH → SSE")
    parser.add_argument(
        "--fault-tickets", type=int, default=10_000, help="dashboard creates per fault scenario"
    )
    parser.add_argument(
        "--fault-widget-requests", type=int, default=2_500, help="widget requests per scenario"
    )
    parser.add_argument(
        "--fault-every",
        type=float,
        default=30.0,
        help="seconds between broker kills (and PostgreSQL restarts) while the load runs",
    )
    parser.add_argument(
        "--suite",
        choices=[
            "all",
            "pipeline",
            "relay",
            "updates",
            "widget",
            "gateway",
            "activity",
            "listing",
            "stream",
            "faults",
        ],
        default="all",
        help="what to run (`all` is every suite but `faults`, which is long: run it by name)",
    )
    args = parser.parse_args()
    # The figures are the output; the broker client's INFO chatter would bury them.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)
    if args.suite in ("all", "pipeline"):
        asyncio.run(
            pipeline.run(
                tickets=args.tickets, concurrency=args.creators, paced_rate=args.paced_rate
            )
        )
    if args.suite in ("all", "relay"):
        asyncio.run(relay.run(rows=args.relay_rows))
    if args.suite in ("all", "updates"):
        asyncio.run(updates.run(seconds=args.update_seconds))
    if args.suite in ("all", "widget"):
        asyncio.run(
            widget.run(
                requests=args.widget_requests,
                service_layer_requests=args.widget_service_layer_requests,
                concurrency=args.concurrency,
                paced_rate=args.widget_paced_rate,
            )
        )

    if args.suite in ("all", "gateway"):
        asyncio.run(
            gateway.run(requests=args.gateway_requests, concurrency=args.gateway_concurrency)
        )
    if args.suite in ("all", "activity"):
        asyncio.run(activity.run(events=args.events, rebuild_events=args.rebuild_events))
    if args.suite in ("all", "listing"):
        asyncio.run(
            listing.run(
                sizes=listing.sizes_from(args.listing_sizes),
                runs=args.listing_runs,
                seconds_per_query=args.listing_seconds,
                http=args.listing_http,
                explain=args.listing_explain,
            )
        )
    if args.suite in ("all", "stream"):
        asyncio.run(stream.run(patches=args.stream_patches, rate=args.stream_rate))
    if args.suite == "faults":
        asyncio.run(
            faults.run(
                tickets=args.fault_tickets,
                widget_requests=args.fault_widget_requests,
                kill_every_seconds=args.fault_every,
            )
        )


main()
