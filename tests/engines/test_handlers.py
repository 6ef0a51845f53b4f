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
