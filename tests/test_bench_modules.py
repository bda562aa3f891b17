"""Every benchmark module imports: the benchmarks run outside the suite (speed is measured there,
not here), so an import that a refactor broke would otherwise first show on a benchmark run."""

import importlib
import pkgutil

import pytest

import bench


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(bench.__path__)))
def test_benchmark_module_imports(name):
    importlib.import_module(f"bench.{name}")


def test_bpb_arithmetic_ceiling_times_every_matrix_product_of_the_model(monkeypatch):
    """The ceiling that says how much faster than nanochat's loop any fp32 path can be must
    count each of the model's products once per timing at its own shape, the lm_head included:
    one left out would raise the ceiling and hide a met-or-missed verdict."""
    import torch

    from bench.bpb import arithmetic_ceiling
    from model.gpt import GPT, GPTConfig

    config = GPTConfig(sequence_len=32, vocab_size=300, n_layer=2, n_head=2, n_kv_head=1, n_embd=64)
    gpt = GPT(config)
    shapes, mm = [], torch.mm

    def recording(a, b, **kwargs):
        shapes.append((tuple(a.shape), tuple(b.shape)))
        return mm(a, b, **kwargs)

    monkeypatch.setattr(torch, "mm", recording)
    ceiling = arithmetic_ceiling(gpt, config.sequence_len, timings=1)
    linears = [tuple(m.weight.shape[::-1]) for m in gpt.modules() if isinstance(m, torch.nn.Linear)]
    # each product runs twice: a warm-up and the one timing
    assert sorted(shapes) == sorted(((32, i), (i, o)) for i, o in linears for _ in range(2))
    assert (64, gpt.lm_head.weight.shape[0]) in linears
    assert 0 < ceiling < float("inf")


def test_bench_serve_runs_end_to_end_and_names_its_target_only_when_run(capsys):
    """A short `bench serve` against a real `glasschat serve`: every reply equals its serial
    greedy run, the CPU the server and its engine process used is shown, and without 16 clients
    the target line says it was not run rather than judging 2 clients against the 16-client
    target."""
    import argparse

    from bench import serve

    args = argparse.Namespace(checkpoint=None, clients=[1, 2], requests=4, max_tokens=16, repeat=1)
    assert serve.run(args) == 0
    out = capsys.readouterr().out
    assert "target: 16 clients >= 3x the single local stream: not run; replies differing from serial greedy: 0" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert len(rows) == 2
    # the CPU each process used: the decode loop runs in the server's engine process, not in it
    server_cores, engine_cores = float(rows[1][6]), float(rows[1][7])
    assert engine_cores > 0.05 and server_cores >= 0
