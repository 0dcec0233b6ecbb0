"""The OpenFisca port of the benchmarks (benchmarks/openfisca_peer) agrees with our engine, household by household.

Only where openfisca-core is installed (the optional extra ``peer``); without it these tests are skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openfisca_core", reason="the OpenFisca peer needs the optional extra: pip install -e '.[peer]'")

from benchmarks.openfisca_peer import DECISIONS, build_system, run
from povertyrules.datasets.synth import synth
from povertyrules.engines.vectorized import evaluate
from povertyrules.lang.rulebook import load_rulebook
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records


def typed_county(households: int, year: int, book):
    county = synth(households, seed=7, year=year, members=False, book=book, blank_rate=0.2)
    return parse_records(county.households, HOUSEHOLD_COLUMNS, "synth", unique="household_id").valid


@pytest.mark.parametrize(("year", "province"), [(2020, None), (2019, None), (2023, "云南省")])
def test_the_port_agrees_on_every_outcome_and_every_rule_verdict(year, province):
    # many blanks (20 % of optional cells), so unknowns and `review` are exercised, not only clear cases
    book = load_rulebook(province=province)
    typed = typed_county(400, year, book)
    ours = evaluate(book, typed)
    peer = run(build_system(book), typed, trace=True, verdicts=True)
    for d in DECISIONS:
        mine = ours.outcome(d)
        assert list(mine) == list(peer.outcomes[d]), d
    assert len(peer.verdicts) >= 35
    for rule, verdicts in peer.verdicts.items():
        np.testing.assert_array_equal(ours.verdict(rule), verdicts, err_msg=rule)
    reviewed = {d for d in DECISIONS if (ours.outcome(d) == "review").any()}
    assert {"identification", "exit"} <= reviewed and (year < 2020 or "monitoring" in reviewed)


def test_the_port_reads_its_figures_from_the_rule_set():
    # a what-if on the parameters moves the port's decisions exactly as it moves ours: no figure is its own
    base = load_rulebook()
    higher = load_rulebook(values={"poverty_line": 6000, "four_look_threshold": 75})
    typed = typed_county(300, 2020, base)
    before = run(build_system(base), typed).outcomes["identification"]
    after = run(build_system(higher), typed).outcomes["identification"]
    assert (before == "poor").sum() < (after == "poor").sum()
    assert list(after) == list(evaluate(higher, typed).outcome("identification"))


def test_a_rule_the_port_computes_must_still_exist_in_the_rule_set(tmp_path):
    import shutil

    from povertyrules.lang.rulebook import rules_folder
    root = tmp_path / "rules"
    shutil.copytree(rules_folder(), root)
    text = (root / "exit.yaml").read_text(encoding="utf-8").replace("score_at_least_threshold", "score_ok")
    (root / "exit.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="score_at_least_threshold"):
        build_system(load_rulebook(root))


def test_the_peer_benchmark_prints_the_ratio_and_the_agreement():
    from tests.test_benchmarks import run as run_benchmark
    out = run_benchmark("bench_peer.py", "--households", "3000", "--repeat", "1")
    assert "OpenFisca, tracer on" in out and "/ OpenFisca traced:" in out and "target ≥ 2×" in out
    assert "identification  agree on" in out and "rule verdicts (the trace): 40 of 40 rules agree" in out
