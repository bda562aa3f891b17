"""Muon: the same update as torch's ``torch.optim.Muon``, with the Newton-Schulz iterations in
float32 on a CPU (torch runs them in bfloat16, which a CPU without bfloat16 instructions emulates
some 40x slower)."""

import torch

from training.muon import Muon, ns_dtype, orthogonalise


def _pair(shape, weight_decay=0.1):
    torch.manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(*shape))
    theirs = torch.nn.Parameter(ours.detach().clone())
    return ours, theirs, Muon([ours], lr=0.02, weight_decay=weight_decay), torch.optim.Muon(
        [theirs], lr=0.02, momentum=0.95, weight_decay=weight_decay, adjust_lr_fn="original")


def test_steps_like_torchs_muon_up_to_bfloat16_rounding():
    for shape in ((64, 256), (256, 64)):  # wide and tall (tall: lr scaled by sqrt(4) = 2)
        ours, theirs, opt_ours, opt_theirs = _pair(shape)
        start = ours.detach().clone()
        for step in range(3):
            grad = torch.randn(*shape, generator=torch.Generator().manual_seed(step))
            ours.grad, theirs.grad = grad.clone(), grad.clone()
            opt_ours.step()
            opt_theirs.step()
        moved_ours, moved_theirs = ours.detach() - start, theirs.detach() - start
        # the same direction and size; only torch's bfloat16 iterations differ
        cosine = torch.nn.functional.cosine_similarity(moved_ours.flatten(), moved_theirs.flatten(), dim=0)
        assert cosine > 0.99, (shape, cosine)
        assert abs(moved_ours.norm() / moved_theirs.norm() - 1) < 0.05


def test_orthogonalise_in_float32_on_a_cpu_and_bfloat16_on_cuda():
    assert ns_dtype(torch.device("cpu")) == torch.float32
    assert ns_dtype(torch.device("cuda")) == torch.bfloat16
    update = orthogonalise(torch.randn(32, 128), torch.float32)
    assert update.dtype == torch.float32 and update.shape == (32, 128)
    singular = torch.linalg.svdvals(update)
    assert singular.min() > 0.5 and singular.max() < 1.3  # pushed towards 1 (the quintic's band)


def test_state_survives_a_save_and_load():
    ours, _, opt, _ = _pair((16, 32))
    ours.grad = torch.randn(16, 32)
    opt.step()
    again = Muon([ours], lr=0.02)
    again.load_state_dict(opt.state_dict())
    assert torch.equal(again.state[ours]["momentum_buffer"], opt.state[ours]["momentum_buffer"])
