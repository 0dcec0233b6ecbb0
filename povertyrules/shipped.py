"""Where the data the package ships lives: the rules folder, the sample county and the analysts' notebook.

In a checkout (an editable install) they are the repository's own top-level folders, the source of truth that
developers edit. A built wheel carries copies under ``povertyrules/_data/`` (put there by ``setup.py``'s build
step), found with `importlib.resources`. The checkout wins, so an editable install always reads the files as
they are being edited.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from povertyrules.errors import PovertyRulesError

CHECKOUT = Path(__file__).resolve().parents[1]


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "rules" / "parameters").is_dir()


def shipped(relative: str) -> Path:
    """The path of a shipped file or folder: the checkout's, else the installed package data's."""
    if _is_checkout(CHECKOUT) and (CHECKOUT / relative).exists():
        return CHECKOUT / relative
    packaged = Path(str(resources.files("povertyrules").joinpath("_data", *relative.split("/"))))
    if packaged.exists():
        return packaged
    raise PovertyRulesError(f"{relative} is not shipped with this installation (looked in {CHECKOUT} and "
                            f"{packaged.parent}); reinstall povertyrules")


def rules_folder() -> Path:
    return shipped("rules")


def sample_county() -> Path:
    """The bundled sample county (2,000 households, Chinese headers, a members sheet)."""
    return shipped("datasets/sample_county.xlsx")


def notebook() -> Path:
    return shipped("notebooks/at_risk_cohorts.ipynb")
