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
    from chord_env.envs.bench import main

    return main(quick=args.quick)


def _bench_rollout(args: argparse.Namespace) -> int:
    from chord_env.agents.bench_rollout import main

    return main(model=args.model, tasks=args.tasks, group=args.group, max_tokens=args.max_tokens, repeats=args.repeats)


def _bench_trainer(args: argparse.Namespace) -> int:
    from chord_env.trainer.bench_trainer import main

    return main(model=args.model, model_dir=args.model_dir, batch=args.batch, prompt_tokens=args.prompt_tokens,
                completion_tokens=args.completion_tokens, repeats=args.repeats, warmup=args.warmup,
                gradient_checkpointing=args.gradient_checkpointing)


def _bench_eval(args: argparse.Namespace) -> int:
    from chord_env.agents.bench_eval import main

    return main(limit=args.limit, max_tokens=args.max_tokens, batch_size=args.batch_size, repeats=args.repeats)


def _prepare_model(args: argparse.Namespace) -> int:
    from chord_env.models import prepare_model

    print(prepare_model(args.name, args.out, dtype=args.dtype))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from chord_env.agents.evaluate import main

    paths = main(args.model, args.suite.split(","), args.out, limit=args.limit, seed=args.seed, parser=args.parser,
                 math_problems=args.math_problems, math_samples=args.math_samples, max_tokens=args.max_tokens,
                 max_prompt_tokens=args.max_prompt_tokens)
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    return 0


def _data_build(args: argparse.Namespace) -> int:
    from chord_env.envs.data_build import build

    report = build(args.out, worlds=args.worlds, n=args.n, seed=args.seed, math_n=args.math_n)
    print(f"wrote {sum(report['rows'].values())} rows to {args.out} in {report['seconds']} s: {report['rows']}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from chord_env.envs.data_build import show

    print(show(args.dir, split=args.split, count=args.count))
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chord_env.trainer.config import load_config
    from chord_env.trainer.train import train

    if args.resume:
        if args.config or args.overrides:
            raise SystemExit("--resume takes the run's own config.yaml; give no --config or overrides")
        config = load_config(Path(args.resume) / "config.yaml", [])
    else:
        config = load_config(args.config, args.overrides)
    print(train(config, resume=bool(args.resume)))
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from chord_env.agents.collect import collect

    print(collect(args.env, args.model, args.out, args.num_tasks, args.group, backend=args.backend,
                  temperature=args.temperature, max_turn_tokens=args.max_turn_tokens, max_context=args.max_context, seed=args.seed))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from chord_env.trainer.demo import main

    return main(out=args.out, seed=args.seed, model_name=args.model, config_path=args.config, overrides=tuple(args.overrides), fc_rows=args.fc_rows)


def _compare(args: argparse.Namespace) -> int:
    from chord_env.trainer.compare import main

    return main(args.methods.split(","), out=args.out, base=args.base, seed=args.seed, overrides=tuple(args.overrides),
                fc_rows=args.fc_rows, model_name=args.model)


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
    bench_ro = bench_commands.add_parser("rollout", help="runner vs raw vLLM tokens/s, vLLM vs HF, weight-sync paths")
    bench_ro.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    bench_ro.add_argument("--tasks", type=int, default=8)
    bench_ro.add_argument("--group", type=int, default=8)
    bench_ro.add_argument("--max-tokens", type=int, default=128)
    bench_ro.add_argument("--repeats", type=int, default=2)
    bench_ro.set_defaults(run=_bench_rollout)
    bench_tr = bench_commands.add_parser("trainer", help="our GRPO update vs TRL's GRPOTrainer on the same batch (needs the bench extra)")
    bench_tr.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    bench_tr.add_argument("--model-dir", help="the fp32 model folder (default: in the chord-env cache; made if missing)")
    bench_tr.add_argument("--batch", type=int, default=8, help="sequences per update")
    bench_tr.add_argument("--prompt-tokens", type=int, default=128)
    bench_tr.add_argument("--completion-tokens", type=int, default=128)
    bench_tr.add_argument("--repeats", type=int, default=3, help="timed updates per side (best of them is reported)")
    bench_tr.add_argument("--warmup", type=int, default=1, help="untimed updates per side first")
    bench_tr.add_argument("--gradient-checkpointing", action="store_true", help="on both sides")
    bench_tr.set_defaults(run=_bench_trainer)
    bench_ev = bench_commands.add_parser("eval", help="non-live BFCL eval with SmolLM2 on vLLM: wall time, tokens/s vs raw vLLM, checks/s")
    bench_ev.add_argument("--limit", type=int, default=10, help="cases per non-live category (stratified, seeded)")
    bench_ev.add_argument("--max-tokens", type=int, default=128)
    bench_ev.add_argument("--batch-size", type=int, default=64)
    bench_ev.add_argument("--repeats", type=int, default=2)
    bench_ev.set_defaults(run=_bench_eval)

    prepare = commands.add_parser("prepare-model", help="write a model folder that transformers and vLLM load offline")
    prepare.add_argument("name", choices=["smollm2-135m-instruct", "tiny-random"])
    prepare.add_argument("--out", required=True, help="the model folder to write (reused if already complete)")
    prepare.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    prepare.set_defaults(run=_prepare_model)

    ev = commands.add_parser("eval", help="held-out evaluation (BFCL single-turn and multi-turn, math) with a Markdown/PNG report")
    ev.add_argument("--model", action="append", required=True, help="a model folder (repeat to compare models)")
    ev.add_argument("--suite", default="bfcl-single,math", help="comma-separated: bfcl-single, bfcl-multi-turn, math")
    ev.add_argument("--limit", type=int, help="at most N cases per category (stratified, seeded)")
    ev.add_argument("--out", required=True, help="the report folder")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--parser", choices=["hermes", "json", "pythonic"], default="hermes", help="the model's tool-call format")
    ev.add_argument("--math-problems", type=int, default=200)
    ev.add_argument("--math-samples", type=int, default=1, help="samples per problem (>1: sampled, for pass@k)")
    ev.add_argument("--max-tokens", type=int, default=512)
    ev.add_argument("--max-prompt-tokens", type=int, help="longer prompts are not sent and fail (context limit)")
    ev.set_defaults(run=_eval)

    data = commands.add_parser("data", help="build and inspect the tool-world and math datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    data_build = data_commands.add_parser("build", help="write train/validation/held-out JSON lines and a dataset card")
    data_build.add_argument("--out", required=True, help="the dataset folder")
    data_build.add_argument("--worlds", nargs="+", help="world names (default: all; held-out worlds go to held_out only)")
    data_build.add_argument("--n", type=int, default=100, help="train tasks per training world")
    data_build.add_argument("--seed", type=int, default=0, help="offset into each split's seed range")
    data_build.add_argument("--math-n", type=int, help="math train tasks (default: --n)")
    data_build.set_defaults(run=_data_build)
    data_show = data_commands.add_parser("show", help="print a few rendered examples")
    data_show.add_argument("dir")
    data_show.add_argument("--split", default="train")
    data_show.add_argument("--count", type=int, default=3)
    data_show.set_defaults(run=_data_show)

    tr = commands.add_parser("train", help="a CHORD training run (any config key can be overridden as key=value)")
    tr.add_argument("--config", help="a YAML file, e.g. configs/chord-phi.yaml")
    tr.add_argument("--resume", metavar="RUN_DIR", help="resume a run from its last complete checkpoint")
    tr.add_argument("overrides", nargs="*", help="key=value, e.g. model=DIR env=chord/Worlds-v0 expert=PATH steps=20 mu.value=0.2")
    tr.set_defaults(run=_train)

    ro = commands.add_parser("rollout", help="sample trajectories from an env with a model into a JSON-lines file")
    ro.add_argument("--env", required=True)
    ro.add_argument("--model", required=True, help="a model folder (chord-env prepare-model)")
    ro.add_argument("--num-tasks", type=int, default=64)
    ro.add_argument("--group", type=int, default=8, help="samples per task")
    ro.add_argument("--out", required=True, help="the JSON-lines file to write")
    ro.add_argument("--backend", choices=("vllm", "hf"), default="vllm")
    ro.add_argument("--temperature", type=float, default=1.0)
    ro.add_argument("--max-turn-tokens", type=int, default=256)
    ro.add_argument("--max-context", type=int, default=2048)
    ro.add_argument("--seed", type=int, default=0)
    ro.set_defaults(run=_rollout)

    demo = commands.add_parser("demo", help="the main job: a short CHORD run on SmolLM2 with evaluation before and after")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--config", default=None, help="training recipe (default: configs/demo.yaml)")
    demo.add_argument("--fc-rows", type=int, default=3000, help="expert traces built from the function catalogue")
    demo.add_argument("overrides", nargs="*", help="key=value overrides of the training config")
    demo.set_defaults(run=_demo)

    compare = commands.add_parser("compare", help="several methods at one budget, evaluated on the same held-out suites")
    compare.add_argument("--methods", default="base,sft,grpo,sft-then-grpo,chord-mu,chord-phi",
                         help="comma-separated: base, a config name in configs/, or a YAML path")
    compare.add_argument("--base", default=None, help="the recipe every method is laid over (default: configs/demo.yaml)")
    compare.add_argument("--out", default="runs/compare")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--fc-rows", type=int, default=3000, help="expert traces built from the function catalogue")
    compare.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    compare.add_argument("overrides", nargs="*", help="key=value overrides applied to every method's config")
    compare.set_defaults(run=_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
