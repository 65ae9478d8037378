"""DistributedDataParallel on CPU: two gloo processes against one process with the same global batch.

Each test starts real worker processes (``torch.multiprocessing.spawn``) that join a gloo process
group exactly as torchrun's environment would make them, and compares with a single-process run.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from asd_utils.training import Trainer
from asd_utils.training import distributed as dist_utils
from asd_utils.training.losses import ArcFace
from asd_utils.training.trainer import extract_embeddings

GLOBAL_BATCH = 8
N_CLIPS = 40
DIM_IN, DIM_EMB, N_CLASSES = 12, 6, 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_CLIPS, DIM_IN, generator=g)
    y = torch.arange(N_CLIPS) % N_CLASSES
    x[:, :N_CLASSES] += 3 * nn.functional.one_hot(y, N_CLASSES)  # learnable classes
    return TensorDataset(x, y)


def _model_and_loss():
    torch.manual_seed(1)  # identical initial weights in every process
    model = nn.Sequential(nn.Linear(DIM_IN, 16), nn.Tanh(), nn.Linear(16, DIM_EMB))  # no batch statistics
    return model, ArcFace(N_CLASSES, DIM_EMB, scale=8.0, margin=0.2)


def _trainer(model, loss, checkpoint_dir=None, epochs=4):
    return Trainer(model, loss, {"name": "adamw", "lr": 5e-3, "weight_decay": 0.01},
                   {"name": "inverse_sqrt", "warmup_steps": 2}, epochs, grad_accum_steps=2, ema_decay=0.9,
                   seed=3, checkpoint_dir=checkpoint_dir, progress=False)


def _loader():
    # built as in a notebook (shuffling RandomSampler, global batch); the trainer re-wraps it with a
    # DistributedSampler under torchrun. The single-process reference wraps it explicitly (world of 1).
    return DataLoader(_data(), batch_size=GLOBAL_BATCH, shuffle=True)


def _state(trainer) -> dict[str, np.ndarray]:
    out = {f"model.{k}": v.detach().cpu().numpy().copy() for k, v in trainer.model.state_dict().items()}
    out.update({f"loss.{k}": v.detach().cpu().numpy().copy() for k, v in trainer.loss_fn.state_dict().items()})
    ema = trainer.ema.averaged_model(trainer.model).state_dict()
    out.update({f"ema.{k}": v.detach().cpu().numpy().copy() for k, v in ema.items()})
    out["history_loss"] = np.array([h["loss"] for h in trainer.state.history])
    return out


def _worker(rank: int, world: int, port: int, task: str, tmp: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    try:
        assert dist_utils.init_distributed() and dist_utils.world_size() == world
        if task == "train":
            model, loss = _model_and_loss()
            trainer = _trainer(model, loss)
            trainer.fit(_loader())
            if rank == 0:
                np.savez(os.path.join(tmp, "ddp.npz"), **_state(trainer))
        elif task == "checkpoint":
            model, loss = _model_and_loss()
            _trainer(model, loss, checkpoint_dir=os.path.join(tmp, "ckpt")).fit(_loader(), until_epoch=2)
        elif task == "extract":
            torch.manual_seed(5)
            net = nn.Linear(DIM_IN, 4)
            x = torch.randn(11, DIM_IN, generator=torch.Generator().manual_seed(9))  # 11 rows: uneven shards
            emb = extract_embeddings(net, x, batch_size=3)
            np.save(os.path.join(tmp, f"extract_rank{rank}.npy"), emb)
    finally:
        dist.destroy_process_group()


def _spawn(task: str, tmp, attempts: int = 3) -> None:
    """Run ``task`` on two processes. The port is free when chosen but another process may take it
    before rank 0 binds it: then the group is formed again on a new port (not a test failure)."""
    for attempt in range(attempts):
        try:
            mp.spawn(_worker, args=(2, _free_port(), task, str(tmp)), nprocs=2, join=True)
            return
        except mp.ProcessRaisedException as error:
            if "address already in use" not in str(error).lower() or attempt == attempts - 1:
                raise


def _single_process_reference(epochs=4, checkpoint_dir=None, resume=False):
    model, loss = _model_and_loss()
    trainer = _trainer(model, loss, checkpoint_dir=checkpoint_dir, epochs=epochs)
    loader = dist_utils.distributed_loader(_loader(), seed=trainer.seed)  # a world of one process
    trainer.fit(loader, resume=resume)
    return trainer


def test_shards_are_contiguous_balanced_and_cover_everything():
    slices = [dist_utils.shard_slice(11, rank_=r, world_size_=3) for r in range(3)]
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 11)]
    assert [dist_utils.shard_slice(1, rank_=r, world_size_=2) for r in range(2)] == [slice(0, 1), slice(1, 1)]
    with pytest.raises(ValueError, match="outside"):
        dist_utils.shard_slice(4, rank_=2, world_size_=2)


def test_without_torchrun_everything_is_a_world_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dist_utils.init_distributed() is False
    assert (dist_utils.world_size(), dist_utils.rank(), dist_utils.is_main_process()) == (1, 0, True)
    local = np.arange(6).reshape(3, 2)
    assert dist_utils.gather_rows(local, 3) is local


def test_world_size_without_rendezvous_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        dist_utils.init_distributed()


def test_global_batch_must_divide_over_processes():
    loader = DataLoader(_data(), batch_size=GLOBAL_BATCH, shuffle=True)
    assert dist_utils.distributed_loader(loader).batch_size == GLOBAL_BATCH  # one process
    # simulate a world of 3 through the sampler arithmetic
    with pytest.raises(ValueError, match="not divisible"):
        orig = dist_utils.world_size
        try:
            dist_utils.world_size = lambda: 3
            dist_utils.distributed_loader(DataLoader(_data(), batch_size=GLOBAL_BATCH, shuffle=True))
        finally:
            dist_utils.world_size = orig


@pytest.mark.slow  # two spawned processes: about 40 s on 2 idle cores
def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    """Same permutation (DistributedSampler seed + epoch), per-process batch 4 x 2 = global 8,
    gradient accumulation 2 with no_sync, AdamW, inverse-sqrt schedule, EMA: equal to 1e-5."""
    _spawn("train", tmp_path)
    ddp = dict(np.load(tmp_path / "ddp.npz"))
    single = _state(_single_process_reference())
    assert ddp.keys() == single.keys()
    for key in single:
        np.testing.assert_allclose(ddp[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # and training did something: the loss fell
    assert single["history_loss"][-1] < 0.8 * single["history_loss"][0]


@pytest.mark.slow
def test_checkpoint_of_a_two_process_run_resumes_in_one_process(tmp_path):
    _spawn("checkpoint", tmp_path)  # 2 of 4 epochs under DDP, checkpoint written by rank 0 only
    ckpt_dir = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.pt"]
    resumed = _state(_single_process_reference(checkpoint_dir=ckpt_dir, resume=True))
    uninterrupted = _state(_single_process_reference())
    for key in uninterrupted:
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_sharded_extraction_returns_every_row_in_input_order(tmp_path):
    _spawn("extract", tmp_path)
    torch.manual_seed(5)
    net = nn.Linear(DIM_IN, 4)
    x = torch.randn(11, DIM_IN, generator=torch.Generator().manual_seed(9))
    expected = extract_embeddings(net, x, batch_size=3)
    for rank in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"extract_rank{rank}.npy"), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.notebook
def test_runner_under_torchrun_runs_each_notebook_on_every_rank_and_rank0_writes(tmp_path):
    """``torchrun --nproc_per_node 2 -m asd_utils.run.runner``: both ranks' kernels join one process group
    (an all-reduce inside the notebook sums the ranks), rank 0 writes to the plan's folders, rank 1
    to its scratch folder, and only rank 0 logs."""
    import subprocess
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("PROFILE = 'smoke'\nDATA_ROOT = None\nOUTPUT_DIR = None",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import torch, torch.distributed as dist\nfrom asd_utils.training import distributed as d\n"
            "assert d.init_distributed()\nx = torch.tensor([float(d.rank() + 1)])\ndist.all_reduce(x)\n"
            "print('SUM', int(x.item()), 'RANK', d.rank(), 'OUT', OUTPUT_DIR)"),
    ]
    notebook = tmp_path / "09_ddp.ipynb"
    nbformat.write(nb, notebook)
    script = tmp_path / "launch.py"
    script.write_text(
        "from pathlib import Path\nfrom asd_utils.run import runner\n"
        f"plan = runner.RunPlan(profile='smoke', notebooks=[Path({str(notebook)!r})], data_root={str(tmp_path)!r}, "
        f"notebooks_out=Path({str(tmp_path / 'out')!r}), results_dir=Path({str(tmp_path / 'results')!r}), "
        "output_dir=None, kernel=None, extra_parameters={})\nrunner.run(plan)\n")
    (tmp_path / "results").mkdir()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("[1/1] 09_ddp ... done") == 1  # rank 0 logs, rank 1 is silent

    def printed(path):
        executed = nbformat.read(path, as_version=4)
        return "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)

    rank0 = printed(tmp_path / "out" / "09_ddp.ipynb")
    rank1 = printed(tmp_path / "out" / "rank1" / "09_ddp.ipynb")
    assert "SUM 3 RANK 0 OUT None" in rank0
    assert "SUM 3 RANK 1" in rank1 and str(tmp_path / "out" / "rank1") in rank1
