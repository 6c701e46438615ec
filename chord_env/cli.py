"""The `chord-env` command line: thin wrappers over the library, each command imported lazily."""

from __future__ import annotations

import argparse
import sys


def _envs_list(args: argparse.Namespace) -> int:
    import chord_env

    for env_id in chord_env.list():
        print(env_id)
    return 0


def _envs_check(args: argparse.Namespace) -> int:
    import chord_env
    from chord_env.env_check import check, format_report

    ids = args.ids or chord_env.list()
    reports = [check(env_id, seed=args.seed) for env_id in ids]
    for report in reports:
        print(format_report(report))
    failed = [r.env_id for r in reports if not r.ok]
    print(f"{len(reports) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _bench_envs(args: argparse.Namespace) -> int:
    from chord_env.bench_envs import main

    return main(quick=args.quick)


def _demo(args: argparse.Namespace) -> int:
    from chord_env.demo import main

    return main(seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chord-env", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    envs = commands.add_parser("envs", help="list and check registered environments")
    envs_commands = envs.add_subparsers(dest="envs_command", required=True)
    envs_commands.add_parser("list", help="print the ids of the registered chord/ envs").set_defaults(run=_envs_list)
    check = envs_commands.add_parser("check", help="gymnasium's env checker plus a scripted episode")
    check.add_argument("ids", nargs="*", help="env ids (default: every registered chord/ env)")
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(run=_envs_check)

    bench = commands.add_parser("bench", help="benchmarks, each reported as a ratio against a baseline")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    bench_env = bench_commands.add_parser("envs", help="env step overhead, parser throughput, math-verify scaling")
    bench_env.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test)")
    bench_env.set_defaults(run=_bench_envs)

    demo = commands.add_parser("demo", help="the main job: a scripted episode of each built-in env")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
