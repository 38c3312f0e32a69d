"""Which files the package is made of; everything else about it is in pyproject.toml.

The shipped model catalog stays in the repository's top-level `data/` folder, its one
copy, and goes into the wheel as `optimizer/data/` by mapping the package `optimizer.data`
onto that folder. pyproject.toml cannot add a mapped package to the packages it finds,
hence this file. Only the catalog is taken from `data/`: the warehouse, reports and other
local state that runs leave there never enter a build.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["optimizer*", "tasks*", "flows*", "deployments*"]),
        "optimizer.data",
    ],
    package_dir={"optimizer.data": "data"},
    package_data={
        "optimizer": ["py.typed"],
        "optimizer.warehouse.migrations": ["*.sql"],
        "optimizer.data": ["model_catalog.json"],
    },
)
