# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Register many pairs (a study's scans to a template): one start-up, reading ahead, writing behind, resumable,
spread over processes, GPUs or machines with ``torchrun``.

    cir-monai batch DATALIST --lam 1 --out runs/batch                      # one process
    torchrun --standalone --nproc_per_node=2 -m cir_monai batch DATALIST --out runs/batch   # 2 processes / GPUs
    torchrun --nnodes=2 --node_rank=R --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 --nproc_per_node=G \\
        -m cir_monai batch DATALIST --out /shared/runs/batch               # 2 machines, G GPUs each

:func:`register_many` is :class:`~cir_monai.engines.inference.RegistrationRunner` (the same outputs as ``register``,
pair by pair) run over a datalist so that a pair costs only its own work:

* the model and the libraries load once per process (a ``register`` process pays ~3 s of that per pair);
* the next pairs are read and preprocessed (and aligned, with ``affine``) in ``workers`` data-loading processes while
  the network registers the current one (:meth:`RegistrationRunner.prepare` in a ``torch.utils.data.DataLoader``);
* a pair's files are written by one writing thread while the next pair is registered (NIfTI's gzip compression
  releases Python's lock);
* each pair's folder appears whole or not at all (written into a hidden staging folder, then moved:
  :func:`cir_monai.atomic.staged_folder`), and a pair whose folder already holds every λ is skipped, so a run
  stopped at pair 900 of 1,000 resumes at pair 901; a pair that fails (an unreadable file, a scan without overlap)
  is reported and the others go on;
* under ``torchrun`` (``WORLD_SIZE`` > 1) rank ``r`` of ``W`` registers pairs ``r, r + W, r + 2W, ...`` of the
  datalist (the order of the file, before skipping finished pairs, so every rank agrees), on GPU ``LOCAL_RANK`` when
  there are GPUs (NCCL), else on the CPU (gloo); the ranks' records are gathered and rank 0 writes one
  ``summary.json`` and ``summary.md``. Every rank needs the datalist's files and the output folder at the same paths
  (a shared file system across machines).

A pair's results do not depend on which process registered it: the test registers a datalist with two gloo
processes and with one, and compares every written file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from monai.data.utils import no_collation
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cir_monai.atomic import staged_folder, write_json, write_text
from cir_monai.defaults import default_device
from cir_monai.engines.inference import RegistrationRunner
from cir_monai.io.models import load_network
from cir_monai.io.results import PAIR_RECORD, TRANSFORM_RECORD, check_pair_folder, lam_tag, pair_record
from cir_monai.runtime import rank_and_world

__all__ = ["register_many", "BatchRegistration", "shard", "with_ids", "finished", "process_group", "summary_markdown"]

#: the summary files of a many-pair run, beside the pairs' folders
SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"


def with_ids(pairs: Sequence[dict]) -> list[dict]:
    """The pairs with their output folder names as ``"id"`` (:meth:`RegistrationRunner.pair_id`: the datalist's
    ``"id"``, else ``pair_<index>_<moving file stem>``).

    Raises:
        ValueError: two pairs with one id (their folders would mix), naming it.
    """
    named = [dict(pair, id=RegistrationRunner.pair_id(index, pair)) for index, pair in enumerate(pairs)]
    seen: dict[str, int] = {}
    for index, pair in enumerate(named):
        if pair["id"] in seen:
            raise ValueError(f"pairs {seen[pair['id']]} and {index} have the same id {pair['id']!r}: their output "
                             "folders would mix; give each pair its own \"id\" in the datalist")
        seen[pair["id"]] = index
    return named


def shard(items: Sequence, rank: int, world: int) -> list:
    """Rank ``rank``'s share of ``items`` among ``world`` processes: items ``rank, rank + world, ...`` (interleaved,
    so every rank gets pairs from the whole list; the shares differ in length by at most one)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world})")
    return list(items)[rank::world]


def finished(folder: str | os.PathLike, pair: dict, lams: Sequence[float]) -> bool:
    """Whether ``folder`` already holds this pair's results at every λ (its pair record names the same files and
    each ``lam_<λ>/`` has the ``transform.json`` written last)."""
    folder = Path(folder)
    record = folder / PAIR_RECORD
    if not record.is_file():
        return False
    try:
        same = json.loads(record.read_text()) == pair_record(pair)
    except ValueError:
        return False
    return same and all((folder / lam_tag(lam) / TRANSFORM_RECORD).is_file() for lam in lams)


def process_group() -> tuple[int, int, bool]:
    """``(rank, world size, started here)``: joins the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (NCCL with
    GPUs, else gloo; a day's timeout, since ranks finish their shares at different times), else ``(0, 1, False)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return (*rank_and_world(), False)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(hours=24))
    return dist.get_rank(), dist.get_world_size(), True


class _Prepared(Dataset):
    """Pairs read and preprocessed by :meth:`RegistrationRunner.prepare`; a failure comes back as ``{"error"}`` so
    one bad pair does not end the run."""

    def __init__(self, runner: RegistrationRunner, pairs: Sequence[dict]) -> None:
        self.runner, self.pairs = runner, list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        try:
            return self.runner.prepare(pair, pair["id"])
        except Exception as err:  # noqa: BLE001 - reported with the pair, the others go on
            return {"pair": pair, "id": pair["id"], "error": f"{type(err).__name__}: {err}"}


def _write_pair(runner: RegistrationRunner, final: Path, prepared: dict, computed: dict) -> dict:
    """Every λ of one pair into a staging folder, moved to ``final`` when all are written; the records with the
    final paths."""
    with staged_folder(final) as staging:
        runner.start_pair(staging, prepared)
        written = {lam: runner.write(staging, prepared, lam, arrays, record)
                   for lam, (arrays, record) in computed.items()}

    def moved(value):
        inside = isinstance(value, str) and Path(value).is_relative_to(staging)
        return str(final / Path(value).relative_to(staging)) if inside else value

    return {lam: {key: moved(value) for key, value in record.items()} | {"folder": str(final / lam_tag(lam))}
            for lam, record in written.items()}


def register_many(pairs: Sequence[dict], lams: Sequence[float] = (1.0,), out: str | os.PathLike = "runs/batch",
                  model: str | os.PathLike | None = None, device: str | torch.device | None = None, workers: int = 1,
                  progress: bool = True, **options) -> dict:
    """Register every pair at every λ into ``out/<id>/lam_<λ>/`` (the files ``register`` writes) and summarise.

    Args:
        pairs: checked pairs (:func:`~cir_monai.data.load_pairs`), in the datalist's order.
        lams: λ values.
        out: the output folder; pairs already finished there are skipped.
        model: a model file (default: the shipped model).
        device: default ``cuda:LOCAL_RANK`` with GPUs, else the CPU.
        workers: data-loading processes reading ahead (0: read in this process, between registrations).
        progress: a bar over this process's pairs (with the ETA) on stderr, and a line per failed pair.
        options: :class:`RegistrationRunner`'s (``ddf_units``, ``frame``, ``refine``, ``affine``, ``inverse``,
            ``figures``).

    Returns:
        the summary written to ``out/summary.json`` (rank 0; every rank returns it): ``"pairs"`` (id → status
        ``registered`` / ``skipped`` / ``failed``, the error, the rank, and per λ the folder, seconds and % folding),
        the counts, ``"seconds"`` (the slowest rank's, start-up included) and ``"pairs_per_hour"``.
    """
    started = time.perf_counter()
    rank, world, started_group = process_group()
    if torch.cuda.is_available() and (device is None or str(device) == "cuda"):  # this process's own GPU
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
    device = default_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = Path(out).expanduser().absolute()
    named = with_ids(pairs)
    for pair in named:  # every rank checks every folder: a mix-up is found before any work
        check_pair_folder(out / pair["id"], pair)
    runner = RegistrationRunner(load_network(model, device), [], lams=lams, output_dir=out, device=device,
                                progress=False, **options)
    mine = shard(named, rank, world)
    records: dict[str, dict] = {}
    todo = []
    for pair in mine:
        if finished(out / pair["id"], pair, runner.lams):
            records[pair["id"]] = {"status": "skipped", "rank": rank}
        else:
            todo.append(pair)
            for stale in out.glob(f".{pair['id']}.partial-*"):  # a killed run's half-written folder of this pair
                shutil.rmtree(stale, ignore_errors=True)
    loader = DataLoader(_Prepared(runner, todo), batch_size=None, collate_fn=no_collation, num_workers=int(workers),
                        prefetch_factor=1 if workers else None)
    label = f"rank {rank}/{world}: registering" if world > 1 else "registering"
    pending: tuple[str, Future] | None = None

    def settle(item: tuple[str, Future] | None) -> None:  # the previous pair's writing: its result or its error
        if item is None:
            return
        pair_id, future = item
        try:
            records[pair_id].update(lams=future.result())
        except Exception as err:  # noqa: BLE001 - a failed write fails that pair only
            records[pair_id].update(status="failed", error=f"{type(err).__name__}: {err}")
            _warn(progress, f"{pair_id}: failed while writing: {err}")

    with ThreadPoolExecutor(max_workers=1) as writer, tqdm(total=len(todo), desc=label, unit="pair",
                                                            disable=not progress, file=sys.stderr) as bar:
        for prepared in loader:
            pair_id = prepared["id"]
            records[pair_id] = {"status": "registered", "rank": rank}
            if "error" in prepared:
                records[pair_id].update(status="failed", error=prepared["error"])
                _warn(progress, f"{pair_id}: failed: {prepared['error']}")
                bar.update(1)
                continue
            try:
                computed = {lam: runner.compute(prepared, lam) for lam in runner.lams}
            except Exception as err:  # noqa: BLE001
                records[pair_id].update(status="failed", error=f"{type(err).__name__}: {err}")
                _warn(progress, f"{pair_id}: failed: {err}")
                bar.update(1)
                continue
            settle(pending)  # at most one pair waits to be written: memory stays at two pairs' outputs
            pending = (pair_id, writer.submit(_write_pair, runner, out / pair_id, prepared, computed))
            folding = max(record["folding_pct"] for _, record in computed.values())
            bar.set_postfix_str(f"{pair_id}: {sum(r['seconds'] for _, r in computed.values()):.1f} s, "
                                f"det J ≤ 0 {folding:.3f} %")
            bar.update(1)
        settle(pending)
    seconds = time.perf_counter() - started
    summary = _merged(records, seconds, rank, world, runner, named)
    if rank == 0:
        write_json(out / SUMMARY_JSON, summary)
        write_text(out / SUMMARY_MD, summary_markdown(summary))
    if started_group:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return summary


def _warn(progress: bool, text: str) -> None:
    if progress:
        tqdm.write(text, file=sys.stderr)


def _merged(records: dict, seconds: float, rank: int, world: int, runner: RegistrationRunner,
            named: Sequence[dict]) -> dict:
    """One summary of every rank's records (gathered to every rank), in the datalist's order."""
    everything, times = records, [seconds]
    if world > 1:
        import torch.distributed as dist

        gathered: list = [None] * world
        dist.all_gather_object(gathered, (records, seconds))
        everything = {k: v for part, _ in gathered for k, v in part.items()}
        times = [t for _, t in gathered]
    pairs = {}
    for pair in named:
        entry = dict(everything.get(pair["id"], {"status": "missing"}))
        entry.update(fixed=pair["fixed"], moving=pair["moving"])
        entry["lams"] = {f"{lam:g}": {key: record[key] for key in ("folder", "seconds", "folding_pct")}
                         for lam, record in entry.get("lams", {}).items()}
        pairs[pair["id"]] = entry
    counts = {status: sum(p["status"] == status for p in pairs.values())
              for status in ("registered", "skipped", "failed")}
    wall = max(times)
    return {"lams": [float(v) for v in runner.lams], "refine": runner.refine, "fine_steps": runner.fine_steps,
            "processes": world, **counts,
            "seconds": wall, "pairs_per_hour": counts["registered"] * 3600.0 / wall if wall > 0 else float("nan"),
            "mean_folding_pct": float(np.mean([v["folding_pct"] for p in pairs.values()
                                                for v in p["lams"].values()] or [np.nan])),
            "pairs": pairs}


def summary_markdown(summary: dict) -> str:
    """The summary as a short report: the counts and speed, then one row per pair and λ."""
    lines = [f"# {summary['registered']} pairs registered, {summary['skipped']} already done, "
             f"{summary['failed']} failed",
             "",
             f"λ {', '.join(f'{v:g}' for v in summary['lams'])}; {summary['refine']} refinement steps"
             + (f" and {summary['fine_steps']} at the fixed grid" if summary.get("fine_steps") else "") + "; "
             f"{summary['processes']} process(es); {summary['seconds']:.1f} s in all (the model's loading included): "
             f"**{summary['pairs_per_hour']:.0f} pairs per hour**.",
             "",
             "| pair | status | λ | seconds | det J ≤ 0 (%) | folder |",
             "|---|---|---|---|---|---|"]
    for pair_id, entry in summary["pairs"].items():
        if not entry["lams"]:
            lines.append(f"| {pair_id} | {entry['status']} {entry.get('error', '')} | | | | |")
        for lam, record in entry["lams"].items():
            lines.append(f"| {pair_id} | {entry['status']} | {lam} | {record['seconds']:.1f} | "
                         f"{record['folding_pct']:.3f} | {record['folder']} |")
    return "\n".join(lines) + "\n"


class BatchRegistration:
    """:func:`register_many` as a workflow object (``run()``), for the bundle's ``multi_gpu_register.yaml``.

    Args:
        pairs, lams, output_dir, model, device, workers: as :func:`register_many` (``output_dir`` is its ``out``).
        options: :class:`~cir_monai.engines.inference.RegistrationRunner`'s.
    """

    def __init__(self, pairs: Sequence[dict], lams: Sequence[float] = (1.0,), output_dir: str | os.PathLike = "runs",
                 model: str | os.PathLike | None = None, device: str | torch.device | None = None, workers: int = 1,
                 **options) -> None:
        self.pairs, self.lams, self.output_dir, self.model = list(pairs), list(lams), output_dir, model
        self.device, self.workers, self.options = device, int(workers), options

    def run(self) -> dict:
        """Register every pair (this process's share under torchrun); returns the summary."""
        return register_many(self.pairs, self.lams, self.output_dir, model=self.model, device=self.device,
                             workers=self.workers, **self.options)
