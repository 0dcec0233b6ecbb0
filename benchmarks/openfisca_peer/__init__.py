"""A benchmark peer: the identification, exit and monitoring rules ported to openfisca-core (issue 13).

Not project code and not a runtime dependency: install it with ``pip install -e '.[peer]'``. The port reads
every threshold from the project's own parameter files (through `povertyrules.lang`), so no policy figure is
written here twice; the rule logic is written again, in OpenFisca's style, and checked to agree with the
project's engine on every household (``benchmarks/bench_peer.py``, ``tests/test_openfisca_peer.py``).
"""

from .run import PeerResult, inputs, run, simulate
from .system import DECISIONS, PovertySystem, build_system, ported_rules

__all__ = ["DECISIONS", "PeerResult", "PovertySystem", "build_system", "inputs", "ported_rules", "run",
           "simulate"]
