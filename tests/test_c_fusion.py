"""The C chunk functions' fused row passes (codegen/c/fuse.py): the same numbers, bit for bit, as
the op-by-op loops they replace (the library built with fusion switched off is the reference),
over training steps with batch norm, layer norm and dropout (p > 0 and p = 0; after an
activation, one loop over the chunk's numbers; dropout before batch norm, whose product the
later passes make again from the stored activation), evaluation mode and the training-mode loss
at other steps; and the passes a batch-norm + dropout layer takes."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from test_normalization import spec

from symbackprop.codegen.c import backend, c_module, fuse
from symbackprop.codegen.program import lower
from symbackprop.core.chain_rule import derive

LAYERS = [{"units": 16, "activation": "relu"}, {"type": "batch_norm"},
          {"type": "dropout", "p": 0.3}, {"units": 8, "activation": "softplus"},
          {"type": "dropout", "p": 0.4}, {"type": "batch_norm"}, {"type": "dropout", "p": 0.0},
          {"type": "layer_norm"}, {"units": 6, "activation": "tanh"},
          {"type": "dropout", "p": 0.5}, {"units": 3, "activation": "softmax"}]  # fmt: skip


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """The float32 library with its row ops fused, and the same library op by op."""
    d = derive(spec(LAYERS, {"type": "adam", "lr": 0.01}, dtype="float32", inputs=5))
    fused = c_module(d, tmp_path_factory.mktemp("fused"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fuse, "fuse_rows", lambda ops, keep: ops)
        plain = c_module(d, tmp_path_factory.mktemp("plain"))
    return fused, plain


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def test_fused_passes_equal_the_op_by_op_loops_bit_for_bit(libraries):
    fused, plain = libraries
    pf, pp = fused.init_params(), plain.init_params()
    sf, sp = fused.init_state(pf), plain.init_state(pp)
    for k in range(6):
        x, t = data(4 + 3 * k, seed=k)
        assert fused.step(pf, sf, x, t) == plain.step(pp, sp, x, t), k
    for name in pp:  # weights, γ, β and the running buffers
        np.testing.assert_array_equal(pf[name], pp[name], err_msg=name)
    x, t = data(9, seed=11)
    for step in (0, 5, 2**33):
        assert fused.loss(pf, x, t, step=step) == plain.loss(pp, x, t, step=step)
    gf, gp = (m.loss_and_grad(p, x, t, step=3)[1] for m, p in ((fused, pf), (plain, pp)))
    for name in gp:
        np.testing.assert_array_equal(gf[name], gp[name], err_msg=name)
    np.testing.assert_array_equal(fused.forward(pf, x), plain.forward(pp, x))


def test_a_batch_norm_dropout_layer_is_three_passes_forward_and_two_backward():
    """relu, μ | relu again, x − μ, σ² | relu and x − μ again, x̂, γx̂ + β, mask, product: only
    x̂, the mask and the output are stored; backward the mask's product with the four batch
    sums | the product again, the closed form with relu's derivative: only δ is stored."""
    layers = [{"units": 6, "activation": "relu"}, {"type": "batch_norm"},
              {"type": "dropout", "p": 0.2}, {"units": 2, "activation": "softmax"}]  # fmt: skip
    ctx = backend.context(lower(derive(spec(layers))))
    fwd = [o for o in ctx["forward"] if o["kind"] == "fused"]
    assert [[p["out"] for p in o["parts"]] for o in fwd] == [
        ["a1", "mu2"], ["a1", "xc2", "v2"], ["a1", "xc2", "xhat2", "a2", "m3", "a3"]]  # fmt: skip
    assert [o["outs"] for o in fwd] == [[], [], ["xhat2", "m3", "a3"]]
    back = [o for o in ctx["backward"] if o["kind"] == "fused"]
    assert [[p["out"] for p in o["parts"]] for o in back] == [
        ["da2", "dg2", "db2", "sg2", "sgx2"], ["da2", "da1", "delta1"]]  # fmt: skip
    assert [o["outs"] for o in back] == [[], ["delta1"]]
    # γ's and β's gradients are Σ g ⊙ x̂ and Σ g: added once after the rows
    assert [(p["out"], p["same"]) for p in back[0]["parts"][1:]] == [
        ("dg2", "sgx2"), ("db2", "sg2"), ("sg2", ""), ("sgx2", "")]  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_source_builds_strict(dtype, tmp_path):
    """The fused passes compile under -Wall -Wextra -Werror -pedantic -Wdouble-promotion."""
    d = derive(spec(LAYERS, dtype=dtype, inputs=5))
    for name, text in backend.files(lower(d)).items():
        (tmp_path / name).write_text(text)
    flags = ["-std=c99", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic",
             "-Wdouble-promotion"]  # fmt: skip
    subprocess.run(["cc", *flags, str(tmp_path / "norm.c")], check=True, timeout=120)


def test_a_value_a_remade_map_reads_is_stored():
    """softplus, then dropout, then batch norm: the later passes make the dropout's product
    again from softplus's output, which the backward pass does not read: it is stored."""
    layers = [{"units": 6, "activation": "softplus"}, {"type": "dropout", "p": 0.2},
              {"type": "batch_norm"}, {"units": 2, "activation": "softmax"}]  # fmt: skip
    ctx = backend.context(lower(derive(spec(layers))))
    fwd = [o for o in ctx["forward"] if o["kind"] == "fused"]
    assert [[p["out"] for p in o["parts"]] for o in fwd][:2] == [
        ["a1", "m2", "a2", "mu3"], ["a2", "xc3", "v3"]]  # fmt: skip
    assert fwd[0]["outs"] == ["a1", "m2"]
