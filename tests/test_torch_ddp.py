"""Distributed training for real: examples/ddp_train.py trains a generated Model on 2 processes
(CPU, gloo, 127.0.0.1) under DistributedDataParallel and under FSDP2 (fully_shard); the final
weights equal one process's training on the same global batches.

Why they are equal: each process computes the spec's loss, a mean over its half of a global
batch, and DDP (or FSDP) averages the two gradients, which is the gradient of the mean over the
whole global batch; the example drops an incomplete last batch, so the halves are always equal.
The only differences are the order of floating-point sums: float64, 1e-12 relative.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import symbackprop
from symbackprop.codegen.torch.loader import torch_module

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from ddp_train import global_batches  # noqa: E402

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp"])
def test_two_processes_equal_one(wrapper, tmp_path):
    spec = ROOT / "examples/two_branch.yaml"  # graph net (concat), SGD with momentum
    data = ROOT / "examples/data/iris.csv"
    out = tmp_path / "ddp.weights"
    args = ["--procs", "2", "--epochs", "4", "--batch-size", "30", "--seed", "5"]
    args += ["--fsdp"] if wrapper == "fsdp" else []
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples/ddp_train.py"), str(spec), str(data), *args,
         "--out", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "epoch 4/4  loss" in run.stdout

    target = torch_module(symbackprop.derive(spec), tmp_path / "single")
    X, T = (torch.from_numpy(a) for a in target.load_data(data))
    module = target.module
    model = module.Model()
    optimizer = module.make_optimizer(model.parameters())
    for epoch in range(4):
        for rows in global_batches(X.shape[0], 30, epoch, 5):
            optimizer.zero_grad()
            model.loss(X[rows], T[rows]).backward()
            optimizer.step()
    ddp = module.Model().load(str(out))
    assert model.W1.dtype == torch.float64
    for name, p in model.named_parameters():
        np.testing.assert_allclose(
            getattr(ddp, name).detach().numpy(), p.detach().numpy(), rtol=1e-12, atol=1e-14
        )
    assert not torch.equal(ddp.W1, module.Model().W1)  # it trained
