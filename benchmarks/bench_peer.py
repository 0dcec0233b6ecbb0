"""Our batch engine against a peer: the same identification, exit and monitoring rules on openfisca-core
(issue 13, item 6), timed in one run on the same synthetic households, checked to agree on every household.

    pip install -e '.[peer]'
    python benchmarks/bench_peer.py                          # 1,000,000 households, seed 7
    python benchmarks/bench_peer.py --households 20000       # a smoke run

Timed, best of --repeat rounds (each round runs every contender once, starting with the next one each round,
so load spikes and memory reuse hit them alike), from
the same typed rows (`parse_records`, not timed):
- ours with the full trace, as `score` produces it: the batch engine in 50k-row chunks, the packed trace
  of every criterion and outcome rule, and the three decisions' outcomes — on the shipped rule set
  (six decisions) and on the port's three decisions alone (the same 40 rules as the port: the target's "same
  rules");
- the OpenFisca port without its tracer and with it (`simulation.trace = True`, OpenFisca's full tracer),
  one simulation over every household, from the typed rows (input arrays included, as ours includes them).

Every household's three outcomes and the verdict of every ported rule are compared with ours; any
disagreement is printed and the script exits 1. Target: ours ≥ 2× OpenFisca's throughput with its tracer on.
Not a unit test: timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from povertyrules.datasets.synth import synth
from povertyrules.decisions.trace import pack, trace_rules
from povertyrules.engines.vectorized import evaluate
from povertyrules.lang import safeyaml
from povertyrules.lang.rulebook import RuleBook, load_rulebook, rules_folder
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records

try:
    from openfisca_peer import DECISIONS, build_system, inputs, ported_rules, run
except ImportError as exc:  # openfisca-core is an optional extra
    raise SystemExit(f"the OpenFisca peer needs openfisca-core: pip install -e '.[peer]' ({exc})") from None

SEED = 7
CHUNK = 50_000  # rows per evaluation, as `povertyrules.score` does
TARGET = 2.0
SAME = "ours, full trace, the port's rules"


def ours_with_trace(book: RuleBook, chunks: list) -> Callable[[], None]:
    """The batch engine as `score` runs it: per chunk, evaluate, pack the trace, take the outcomes."""
    rules = trace_rules(book)

    def go() -> None:
        for chunk in chunks:
            result = evaluate(book, chunk)
            pack(result, rules)
            for d in DECISIONS:
                result.outcome(d)
    return go


def same_rules_book(book: RuleBook, folder: Path) -> RuleBook:
    """The shipped rule set with only the rule files the port covers (its three decisions and their criteria):
    the same rules, so the same trace, on both sides."""
    covered = set(ported_rules(book))
    root = folder / "rules"
    shutil.copytree(rules_folder(), root)
    for path in root.glob("*.yaml"):  # rule files; parameters, layouts … are in folders and stay
        data = safeyaml.load(path)
        ids = {item["id"] for key in ("definitions", "criteria") for item in data.get(key) or []}
        ids |= {item["id"] for item in (data.get("decision") or {}).get("outcomes") or []}
        if data.get("entity") == "household" and not ids & covered:
            path.unlink()
    return load_rulebook(root, [*book.override_files], dict(book.override_values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--year", type=int, default=2020)
    parser.add_argument("--province", default=None, help="a shipped province file (needed from 2021, M21-4)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    book = load_rulebook(province=args.province)
    folder = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    print(f"{args.households:,} synthetic households, seed {SEED}, year {args.year}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, openfisca-core {_version('openfisca-core')}\n", flush=True)

    started = time.perf_counter()
    county = synth(args.households, seed=SEED, year=args.year, members=False, book=book)
    typed = parse_records(county.households, HOUSEHOLD_COLUMNS, "synth", unique="household_id").valid
    chunks = [typed.iloc[i:i + CHUNK].reset_index(drop=True) for i in range(0, len(typed), CHUNK)]
    n = len(typed)
    print(f"{n:,} households read ({args.households - n:,} spoilt rows are error rows), "
          f"{time.perf_counter() - started:.1f} s (not timed)\n", flush=True)

    three = same_rules_book(book, folder)
    system = build_system(book)
    contenders: dict[str, Callable[[], object]] = {
        "ours, full trace, shipped rule set": ours_with_trace(book, chunks),
        SAME: ours_with_trace(three, chunks),
        "OpenFisca, tracer off": lambda: run(system, typed),
        "OpenFisca, tracer on": lambda: run(system, typed, trace=True),
    }
    best = dict.fromkeys(contenders, float("inf"))
    names = list(contenders)
    for round_ in range(args.repeat):  # each round starts with the next contender: no one always runs first
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            action = contenders[name]
            began = time.perf_counter()
            action()
            best[name] = min(best[name], time.perf_counter() - began)

    # where the time goes (one more timing of each part)
    chunk_results = [evaluate(three, c) for c in chunks]
    eval_s = _timed(lambda: [evaluate(three, c) for c in chunks])
    pack_s = _timed(lambda: [pack(r, trace_rules(three)) for r in chunk_results])
    inputs_s = _timed(lambda: inputs(typed))

    rules = {"shipped": len(trace_rules(book)), "port": len(trace_rules(three))}
    print(f"{'contender':<40} {'seconds':>8} {'households/s':>14}")
    for name, seconds in best.items():
        print(f"{name:<40} {seconds:>8.3f} {n / seconds:>14,.0f}")
    print(f"\ntrace rules: shipped rule set {rules['shipped']}, the port's {rules['port']} "
          f"(OpenFisca computes {len(ported_rules(book))} rule variables plus inputs and decisions)")
    print(f"ours on the port's rules: evaluate {eval_s:.3f} s, the packed trace (Arrow) {pack_s:.3f} s; "
          f"OpenFisca: input arrays {inputs_s:.3f} s of its run")
    traced = best["OpenFisca, tracer on"]
    for name in (SAME, "ours, full trace, shipped rule set"):
        ratio = traced / best[name]
        print(f"{name} / OpenFisca traced: {ratio:.2f}× "
              f"(target ≥ {TARGET:g}×: {'met' if ratio >= TARGET else 'NOT met'})")
    print(f"ours, full trace, the port's rules / OpenFisca untraced: "
          f"{best['OpenFisca, tracer off'] / best[SAME]:.2f}×")

    disagreements = agreement(book, typed, system)
    print(f"\nfiles in {folder}")
    sys.exit(1 if disagreements else 0)


def agreement(book: RuleBook, typed, system) -> int:
    """Compare every household's outcomes and every ported rule's verdict; print counts and differences."""
    peer = run(system, typed, verdicts=True)
    ours = [evaluate(book, typed.iloc[i:i + CHUNK].reset_index(drop=True)) for i in range(0, len(typed), CHUNK)]
    total = 0
    print()
    for d in DECISIONS:
        mine = np.concatenate([r.outcome(d) for r in ours])
        differ = mine != peer.outcomes[d]
        total += int(differ.sum())
        print(f"{d:<15} agree on {int((~differ).sum()):,} of {len(mine):,} households"
              + ("" if not differ.any() else f"; DISAGREE on {int(differ.sum()):,}"))
        for row in np.flatnonzero(differ)[:5]:
            print(f"    household {typed['household_id'].iloc[row]}: ours {mine[row]!r}, "
                  f"OpenFisca {peer.outcomes[d][row]!r}")
    wrong = {}
    for name, verdicts in peer.verdicts.items():
        mine = np.concatenate([r.verdict(name) for r in ours])
        if (mine != verdicts).any():
            wrong[name] = int((mine != verdicts).sum())
    total += sum(wrong.values())
    print(f"rule verdicts (the trace): {len(peer.verdicts) - len(wrong)} of {len(peer.verdicts)} rules agree on "
          "every household" + (f"; DISAGREE: {wrong}" if wrong else ""))
    return total


def _timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


if __name__ == "__main__":
    main()
