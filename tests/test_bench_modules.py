"""Every benchmark module imports: the benchmarks run outside the suite (speed is measured there,
not here), so an import that a refactor broke would otherwise first show on a benchmark run."""

import importlib
import pkgutil

import pytest

import bench


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(bench.__path__)))
def test_benchmark_module_imports(name):
    importlib.import_module(f"bench.{name}")
