"""`make bench`: the benchmarks, each beside its baseline measured in the same run."""

import argparse
import asyncio
import logging

from tests.benchmarks import pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1000, help="tickets per pipeline run")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent creators")
    parser.add_argument("--paced-rate", type=float, default=50.0, help="tickets/s, latency run")
    args = parser.parse_args()
    # The figures are the output; the broker client's INFO chatter would bury them.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)
    asyncio.run(
        pipeline.run(tickets=args.tickets, concurrency=args.concurrency, paced_rate=args.paced_rate)
    )


main()
