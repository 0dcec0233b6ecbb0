"""povertyrules: identification, exit and return-to-poverty monitoring as declarative, cited rules.

The public Python API:

>>> import povertyrules
>>> book = povertyrules.load_rules()          # the shipped rules/ folder
>>> result = povertyrules.score(frame, year=2020, overrides={"monitoring_multiplier": 1.8})  # doctest: +SKIP
>>> result.decisions, result.errors                                                          # doctest: +SKIP
"""

from povertyrules.lang.rulebook import RuleBook
from povertyrules.lang.rulebook import load_rulebook as load_rules
from povertyrules.scoring import ScoreResult, score

__all__ = ["RuleBook", "ScoreResult", "load_rules", "score"]
__version__ = "0.1.0"
