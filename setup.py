"""Installs the top-level folders rl/, rewards/ and data_synthesis/ as rerank_rl.rl, rerank_rl.rewards and
rerank_rl.data_synthesis, so that they never shadow (or get shadowed by) the unrelated PyPI packages `rl`/`rewards`."""

from setuptools import find_packages, setup

ROOTS = ("rl", "rewards", "data_synthesis")
found = find_packages(include=[f"{root}*" for root in ROOTS])
setup(
    packages=[f"rerank_rl.{name}" for name in found],
    package_dir={f"rerank_rl.{root}": root for root in ROOTS},
    package_data={"rerank_rl.rl": ["templates/*"]},
)
