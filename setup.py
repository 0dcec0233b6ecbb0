"""Build step: copy the repository's top-level data (rules/, the sample county, the notebook) into the wheel
as package data under povertyrules/_data/, so the top-level folders stay the single source of truth.
Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: relative to the checkout; povertyrules/shipped.py finds them in the checkout first, then under _data/
SHIPPED = ("rules", "datasets/sample_county.xlsx", "datasets/sample_national_export.xlsx",
           "notebooks/at_risk_cohorts.ipynb")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        target = Path(self.build_lib) / "povertyrules" / "_data"
        for relative in SHIPPED:
            source, destination = ROOT / relative, target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination, ignore=IGNORE, dirs_exist_ok=True)
            else:
                shutil.copy2(source, destination)


setup(cmdclass={"build_py": build_py_with_data})
