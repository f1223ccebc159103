"""Train a symbackprop-generated PyTorch model with DistributedDataParallel, on several processes.

symbackprop derives the gradients and generates the model; PyTorch distributes it. This script
generates the torch target of SPEC (``<name>_torch.py``: a ``Model`` whose backward passes are
the derived formulas, registered as custom operators), starts ``--procs`` processes on this
machine (CPU, backend gloo, 127.0.0.1) and trains the Model wrapped in DistributedDataParallel,
unchanged:

- every epoch visits the rows in the order of a seeded permutation, in global batches of
  ``--batch-size`` rows (the last, incomplete batch is dropped);
- each process takes its equal share of every global batch and computes the spec's loss on it;
- DDP averages the gradients over the processes. When the loss is a mean over the batch (the
  default reduction), the average of the shares' gradients is the gradient of the global
  batch, so N processes train exactly as one process on the same global batches (up to
  rounding: the test checks 1e-12).

With ``--fsdp`` the Model is sharded with FSDP2 (``torch.distributed.fsdp.fully_shard``)
instead: each process keeps a shard of every parameter, the full tensors are gathered for each
pass and the gradients reduce-scattered; the numbers are the same. Rank 0 prints the mean loss
of each epoch and saves the weights (symbackprop's weight file, readable by the NumPy and C
targets).

    python examples/ddp_train.py examples/two_branch.yaml examples/data/iris.csv --procs 2
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel


def global_batches(n: int, batch_size: int, epoch: int, seed: int) -> list[torch.Tensor]:
    """The row indices of each full global batch of one epoch (the same in every process)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator)
    return [order[s : s + batch_size] for s in range(0, n - batch_size + 1, batch_size)]


def load_module(path: str | Path):
    """Import the generated ``<name>_torch.py`` (it needs only torch)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wrap(model, fsdp: bool):
    """The model under DDP (every process holds all parameters, gradients all-reduced), or
    FSDP2 (fully_shard: each holds a shard, gathered for every pass, gradients reduce-scattered);
    both average the gradients over the processes."""
    if not fsdp:
        return DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    return fully_shard(model)


def save(module, model, fsdp: bool, rank: int, path: str) -> None:
    """Rank 0 writes the weights; under FSDP every rank first helps gather the full tensors."""
    if fsdp:
        full = {name: p.full_tensor() for name, p in model.named_parameters()}  # collective
        model = module.Model()
        with torch.no_grad():
            for name, value in full.items():
                getattr(model, name).copy_(value)
    if rank == 0:
        model.save(path)


def worker(rank: int, procs: int, port: int, module_path: str, X, T, args) -> None:
    """One process: its share of every global batch, the gradients averaged over processes."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=procs)  # fmt: skip
    try:
        module = load_module(module_path)
        plain = module.Model()
        model = wrap(plain, args.fsdp)
        optimizer = module.make_optimizer(model.parameters())
        share = args.batch_size // procs
        for epoch in range(args.epochs):
            total = torch.zeros(2, dtype=torch.float64)  # sum of share losses, their count
            for rows in global_batches(X.shape[0], args.batch_size, epoch, args.seed):
                mine = rows[rank * share : (rank + 1) * share]
                optimizer.zero_grad()
                loss = model(X[mine], T[mine])  # Model.forward(X, T) is the spec's loss
                loss.backward()  # the derived backward; DDP or FSDP averages the gradients
                optimizer.step()
                total += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
            dist.all_reduce(total)
            if rank == 0 and not args.quiet:
                print(f"epoch {epoch + 1}/{args.epochs}  loss {total[0] / total[1]:.6g}")
        save(module, plain, args.fsdp, rank, args.out)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    import symbackprop
    from symbackprop.codegen.torch.loader import torch_module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="network spec (YAML or JSON)")
    parser.add_argument("data", help="training data: .csv, .npy or .npz (as symbackprop train)")
    parser.add_argument("--procs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--epochs", type=int, help="default: the spec's")
    parser.add_argument("--batch-size", type=int, help="rows of a global batch (the spec's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch order")
    parser.add_argument("--out", help="weights file (default: <name>.weights)")
    parser.add_argument("--workdir", help="where to generate the code (default: a temporary dir)")
    parser.add_argument("--fsdp", action="store_true", help="FSDP2 (fully_shard) instead of DDP")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    spec = symbackprop.load_spec(args.spec)
    args.epochs = args.epochs or spec.train.epochs
    args.batch_size = args.batch_size or spec.train.batch_size
    args.out = args.out or f"{spec.name}.weights"
    if args.procs < 1 or args.batch_size % args.procs:
        parser.error("--batch-size must be a multiple of --procs (each takes an equal share)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ddp-train-"))
    target = torch_module(symbackprop.derive(spec), workdir)  # writes <name>_torch.py there
    X, T = (torch.from_numpy(a) for a in target.load_data(args.data))
    if X.shape[0] < args.batch_size:
        parser.error(f"{args.data} has {X.shape[0]} rows, fewer than one batch")
    module_path = str(workdir / f"{spec.name}_torch.py")
    mp.spawn(worker, (args.procs, free_port(), module_path, X, T, args), nprocs=args.procs)
    if not args.quiet:
        print(f"saved weights to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
