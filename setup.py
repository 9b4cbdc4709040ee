"""Package discovery for setuptools (everything else is in pyproject.toml).

Every code package under ``edgenas/`` is found, not listed by hand. The shipped data lives in top-level folders of
the checkout (``latency_tables/``, ``devices/``, ``benchmarks/data/``) and is installed as ``edgenas._data.*``.
"""

from setuptools import find_packages, setup

#: Installed data package -> its folder in the checkout.
DATA_PACKAGES = {
    "edgenas._data.latency_tables": "latency_tables",
    "edgenas._data.devices": "devices",
    "edgenas._data.benchmark_data": "benchmarks/data",
}

setup(
    packages=find_packages(include=["edgenas", "edgenas.*"]) + list(DATA_PACKAGES),
    package_dir={"edgenas": "edgenas", **DATA_PACKAGES},
)
