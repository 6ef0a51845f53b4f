"""The training engine's logging handlers on an ignite engine that emits trainer-like records."""

from __future__ import annotations

import json
import logging

from ignite.engine import Engine, Events

from cir_monai.engines.handlers import default_handlers


def _engine(start: int = 0) -> Engine:
    def step(engine, k):
        return [{"iteration": k, "total": 12, "level": 1 + (k > 6), "frozen": k == 7, "loss": 1.0 / k,
                 "similarity": 0.5, "smoothness": 0.1, "label": 0.0, "lam": 2.0, "seconds_per_iteration": 0.5,
                 "eta_seconds": 3.0 * (12 - k)}]

    engine = Engine(step)

    @engine.on(Events.ITERATION_COMPLETED)
    def validate(engine):  # as the trainer does: scores in engine.state.metrics at the iteration they ran
        if engine.state.output[0]["iteration"] % 6 == 0:
            engine.state.metrics = {"val_dice@1": 0.7}
            engine.state.metrics_iteration = engine.state.output[0]["iteration"]

    return engine


def test_progress_lines_metrics_file_and_tensorboard_at_the_global_iteration(tmp_path, caplog):
    engine = _engine()
    for handler in default_handlers(tmp_path, log_every=4, tensorboard=True):
        handler.attach(engine)
    with caplog.at_level(logging.INFO, logger="cir_monai.train"):
        engine.run(range(7, 13), max_epochs=1)  # a resumed run: global iterations 7..12
    lines = [r.getMessage() for r in caplog.records if r.name == "cir_monai.train"]
    assert [line.split()[1] for line in lines] == ["8/12", "12/12"] and "ETA 00:00:12" in lines[0]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r] == [8, 12]
    assert [r["iteration"] for r in records if "val_dice@1" in r] == [12]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [8, 12]  # the global k, not ignite's 1..6
    assert [e.step for e in events.Scalars("val_dice@1")] == [12]


def test_divergence_guard_needs_a_fall_from_the_last_good_validation(tmp_path):
    """A run's first validation below no registration (MONAI Label's 3-step fine-tune of the shipped model scored
    0.42-0.51 against 0.73 unregistered) is kept as the first good state, not called a collapse; a later fall below
    both no registration and that state, by more than the margin at every λ, stops the run for a rollback."""
    from types import SimpleNamespace

    import torch

    from cir_monai.engines.handlers import DivergenceGuard
    from cir_monai.networks import CLapIRN

    network = CLapIRN(2, start_channels=2, num_levels=1)
    optimizer = torch.optim.Adam(network.parameters())
    guard = DivergenceGuard(tmp_path / "good.pt", network, optimizer, interval=10)
    stopped = []
    engine = SimpleNamespace(state=SimpleNamespace(), terminate=lambda: stopped.append(True))

    def check(k, dice):
        engine.state.output = [{"iteration": k, "level": 1, "loss": -0.5, "total": 100}]
        engine.state.metrics = {"val_dice_before": 0.73, **{f"val_dice@{lam}": d for lam, d in zip((0.1, 1), dice)}}
        engine.state.metrics_iteration = k
        guard(engine)

    check(10, (0.42, 0.46))  # first validation, below no registration: the first good state
    assert not stopped and torch.load(tmp_path / "good.pt", weights_only=True)["validation"]["val_dice@1"] == 0.46
    check(20, (0.40, 0.44))  # below both, but by less than the margin: still good
    assert not stopped and torch.load(tmp_path / "good.pt", weights_only=True)["iteration"] == 20
    check(30, (0.30, 0.50))  # one λ has not fallen: no collapse
    assert not stopped
    check(40, (0.18, 0.18))  # the collapse: back to iteration 30's state
    assert stopped and engine.state.rollback["iteration"] == 40
    assert torch.load(tmp_path / "good.pt", weights_only=True)["iteration"] == 30
