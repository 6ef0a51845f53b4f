from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Events

from cir_monai.data import RandomPairDataset, make_pair, phantom
from cir_monai.data.training import StepSampler
from cir_monai.engines import CLapIRNTrainer
from cir_monai.engines.handlers import TrainingCheckpoint, default_handlers
from cir_monai.engines.validation import LevelValidation, LevelValidator
from cir_monai.losses import CLapIRNLoss
from cir_monai.networks import CLapIRN

SHAPE = (24, 24, 24)


@pytest.fixture(scope="module")
def template():
    return phantom(SHAPE, seed=0)


class FixedPair(torch.utils.data.Dataset):
    def __init__(self, pair):
        self.pair = {k: v[0] for k, v in pair.items()}

    def __len__(self):
        return 10**6

    def __getitem__(self, k):
        return self.pair


def net(seed=0, levels=3):
    torch.manual_seed(seed)
    return CLapIRN(3, start_channels=2, num_levels=levels)


def make_trainer(network, data, out, lr=1e-4, checkpoint_every=500, val_pairs=None, val_every=1000,
                 val_lams=(0.1, 1.0, 4.0), log_every=1, label_weight=0.0, field_weight=0.0, **kwargs):
    """The trainer as the bundle builds it: optimizer, loss and handlers (checkpoint, validation, logs) as objects."""
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, fused=True)
    handlers = [TrainingCheckpoint(out / "checkpoint.pt", network, optimizer, kwargs.get("frame"), checkpoint_every)]
    if val_pairs:
        handlers.append(LevelValidation(LevelValidator(network, val_pairs, val_lams, "cpu"), val_every))
    handlers += default_handlers(out, log_every, tensorboard=False)
    return CLapIRNTrainer(network, data, out, optimizer=optimizer,
                          loss_function=CLapIRNLoss(3, network.num_levels, label_weight=label_weight,
                                                    field_weight=field_weight),
                          handlers=handlers, log_every=log_every, **kwargs)


def run_until_killed(trainer, iteration: int) -> None:
    """Run ``trainer`` and kill it (KeyboardInterrupt) after global ``iteration``, as a user's Ctrl-C would."""
    def kill(engine):
        if engine.state.output[0]["iteration"] == iteration:
            raise KeyboardInterrupt

    trainer.engine.add_event_handler(Events.ITERATION_COMPLETED, kill)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()


def test_training_on_a_fixed_pair_lowers_the_similarity_loss(tmp_path, template):
    pair = make_pair(*template, seed=1)
    trainer = make_trainer(net(levels=1), FixedPair(pair), tmp_path, iterations=(40,), freeze_steps=0, lr=3e-3,
                             log_every=1, checkpoint_every=100)
    result = trainer.run()
    sims = [r["similarity"] for r in trainer.history if "similarity" in r]
    assert sum(sims[-5:]) / 5 < sum(sims[:5]) / 5 - 0.02
    assert (tmp_path / "model.pt").is_file() and result["iterations"] == 40
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) >= 40


@pytest.mark.parametrize("fresh, final", [(False, 1.0), (True, 1.0), (True, 0.1)])
def test_resume_continues_with_identical_losses(tmp_path, template, fresh, final):
    """Also with a fresh Adam per level (the reset at the first step of a level happens again after a resume) and
    with the last level's learning-rate decay (the rate is a function of the step, not of the run's history)."""
    data = RandomPairDataset(*template, pool_size=4)
    kwargs = dict(iterations=(4, 3, 3), freeze_steps=1, checkpoint_every=5, log_every=1, lr=1e-3,
                  fresh_optimizer_per_level=fresh, final_lr_fraction=final)
    full = make_trainer(net(0), data, tmp_path / "full", **kwargs)
    full.run()
    reference = {r["iteration"]: r["loss"] for r in full.history if "loss" in r}

    interrupted = make_trainer(net(0), data, tmp_path / "cut", **kwargs)
    run_until_killed(interrupted, 7)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["iteration"] == 5

    resumed = make_trainer(net(123), data, tmp_path / "cut", **kwargs)  # other init: the checkpoint must win
    resumed.run()
    after = {r["iteration"]: r["loss"] for r in resumed.history if "loss" in r}
    assert sorted(after) == [6, 7, 8, 9, 10]
    for k, loss in after.items():
        assert loss == reference[k], (k, loss, reference[k])
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * final)  # the last step's rate


def test_fresh_optimizer_per_level_restarts_adam(tmp_path, template):
    """The authors start a new Adam at each level: level 1's weights, frozen for the first step of level 3 (of
    steps 8-10), have taken 2 Adam steps since the reset, not the 4 + 2 + 2 of one Adam for the whole run."""
    data = RandomPairDataset(*template, pool_size=4)
    steps = {}
    for fresh in (False, True):
        trainer = make_trainer(net(0), data, tmp_path / str(fresh), iterations=(4, 3, 3), freeze_steps=1,
                               fresh_optimizer_per_level=fresh)
        trainer.run()
        state = trainer.optimizer.state
        steps[fresh] = [int(state[p]["step"]) for p in (next(trainer.model.levels[0].parameters()),
                                                         next(trainer.model.levels[2].parameters()))]
    assert steps == {False: [8, 3], True: [2, 3]}


def test_centralized_mapping_is_frozen_with_the_lower_levels(tmp_path, template):
    """CIR-CM's one mapping network conditions every level, so it is frozen with the lower levels (the authors'
    code): unchanged through level 2's frozen steps, trained again after them."""
    torch.manual_seed(0)
    model = CLapIRN(3, start_channels=2, num_levels=2, conditioning="centralized")
    data = RandomPairDataset(*template, pool_size=3)
    trainer = make_trainer(model, data, tmp_path, iterations=(1, 3), freeze_steps=2, lr=1e-2)
    weights = {}

    def keep(engine):
        weights[engine.state.output[0]["iteration"]] = next(model.mapping.parameters()).detach().clone()

    trainer.engine.add_event_handler(Events.ITERATION_COMPLETED, keep)
    trainer.run()
    assert torch.equal(weights[1], weights[3])  # frozen at steps 2 and 3
    assert not torch.equal(weights[3], weights[4])  # trained at step 4


def test_validation_and_frozen_levels(tmp_path, template):
    data = RandomPairDataset(*template, pool_size=3)
    val = [make_pair(*template, seed=99)]
    trainer = make_trainer(net(), data, tmp_path, iterations=(2, 2, 2), freeze_steps=1, val_pairs=val, val_every=3,
                             val_lams=(0.5, 5.0), log_every=1)
    frozen_grads = []

    def check(engine):
        out = engine.state.output[0]
        if out["frozen"]:
            frozen_grads.append(trainer.model.levels[0].encoder[0].weight.grad)

    trainer.engine.add_event_handler(Events.ITERATION_COMPLETED, check)
    trainer.run()
    assert frozen_grads and all(g is None for g in frozen_grads)
    vals = [r for r in trainer.history if "val_dice@0.5" in r]
    assert [r["iteration"] for r in vals] == [3, 6]
    assert {"val_jac_std@5", "val_folding_pct@0.5", "val_dice_before"} <= set(vals[0])
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("val_dice@5" in record for record in lines)


def test_bad_configuration(tmp_path, template):
    data = RandomPairDataset(*template, pool_size=2)
    with pytest.raises(ValueError, match="iterations has 2 entries, the network has 3 levels"):
        CLapIRNTrainer(net(), data, tmp_path, iterations=(2, 2))
    with pytest.raises(ValueError, match="lam sampling"):
        CLapIRNTrainer(net(), data, tmp_path, iterations=(1, 1, 1), lam_sampling="gauss")


def test_resume_keeps_this_runs_fused_adam(tmp_path, template):
    """A checkpoint saved by a run with the loop Adam (release 0.2.0) resumes with the fused one."""
    data = RandomPairDataset(*template, pool_size=4)
    kwargs = dict(iterations=(2, 1, 1), freeze_steps=0, checkpoint_every=2, log_every=1)
    first = make_trainer(net(0), data, tmp_path, **kwargs)
    first.run()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = None
    again = make_trainer(net(0), data, tmp_path / "again", **kwargs)
    again.load_state(state)
    assert all(group["fused"] is True for group in again.optimizer.param_groups)
    assert all(slot["step"].dtype == torch.float32 for slot in again.optimizer.state.values())
    again.optimizer.step()  # the fused kernel accepts the restored state


def test_fine_tuning_label_term_and_frame(tmp_path, template):
    from cir_monai.data.training import SyntheticPairDataset
    from cir_monai.io import load_checkpoint, load_network, save_checkpoint

    source = net(seed=5, levels=2)
    save_checkpoint({"model": source.state_dict(), "network": source.config}, tmp_path / "start.pt")
    model = net(seed=0, levels=2)
    frame = {"spacing": 1.5, "spatial_size": list(SHAPE)}
    trainer = make_trainer(model, SyntheticPairDataset(*template, seed=3), tmp_path / "run", iterations=(2, 1),
                             freeze_steps=0, label_weight=1.0, init_from=tmp_path / "start.pt", frame=frame,
                             log_every=1, checkpoint_every=1)
    trainer.run()
    assert trainer.history[0]["label"] > 0  # the label term was computed
    # training started from the source weights (3 Adam steps at lr 1e-4 move them little), not from model's own
    fresh, trained = net(seed=0, levels=2).state_dict(), trainer.model.state_dict()
    start = source.state_dict()
    moved = sum((trained[k] - start[k]).abs().sum() for k in start)
    apart = sum((fresh[k] - start[k]).abs().sum() for k in start)
    assert moved < 0.05 * apart, (moved, apart)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint["frame"]["spacing"] == [1.5, 1.5, 1.5]
    loaded = load_network(tmp_path / "run" / "model.pt")
    assert loaded.frame["spacing"] == [1.5, 1.5, 1.5] and loaded.frame["lam_range"] == [0.0, 10.0]
    wrong = CLapIRN(3, start_channels=3, num_levels=2)
    with pytest.raises(ValueError, match="architecture"):
        CLapIRNTrainer(wrong, SyntheticPairDataset(*template), tmp_path / "other", iterations=(1, 1),
                       init_from=tmp_path / "start.pt").run()


def test_max_epochs_sets_the_schedule_of_a_list_but_not_of_generated_data(tmp_path, template):
    generated = RandomPairDataset(*template, pool_size=2)
    trainer = CLapIRNTrainer(net(), generated, tmp_path / "g", iterations=(2, 2, 4), freeze_steps=0, max_epochs=3)
    assert tuple(trainer.schedule.iterations) == (2, 2, 4)  # no epoch: the iterations stand

    class FivePairs(FixedPair):
        def __len__(self):
            return 5

    listed = FivePairs(make_pair(*template, seed=1))
    trainer = CLapIRNTrainer(net(), listed, tmp_path / "l", iterations=(2, 2, 4), freeze_steps=0, max_epochs=2)
    assert sum(trainer.schedule.iterations) == 10  # 2 passes over 5 pairs, spread over the levels


def test_step_sampler_reads_the_items_of_each_step_from_start():
    """Step k reads items (k − 1)·batch … k·batch − 1 (one process), from step start + 1 on: a resumed loader reads
    what an uninterrupted one would."""
    sampler = StepSampler(batch_size=2, start=3)
    first = [index for _, index in zip(range(4), sampler)]
    assert first == [6, 7, 8, 9]
    with pytest.raises(ValueError, match="batch_size"):
        StepSampler(batch_size=0)


def test_a_training_loader_needs_a_step_sampler(tmp_path, template):
    data = RandomPairDataset(*template, pool_size=2)
    with pytest.raises(ValueError, match="StepSampler"):
        CLapIRNTrainer(net(), torch.utils.data.DataLoader(data, batch_size=1), tmp_path, iterations=(1, 1, 1))
    mismatched = torch.utils.data.DataLoader(data, batch_size=2, sampler=StepSampler(batch_size=1))
    with pytest.raises(ValueError, match="batch_size"):
        CLapIRNTrainer(net(), mismatched, tmp_path, iterations=(1, 1, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=StepSampler(batch_size=2))
    trainer = make_trainer(net(), loader, tmp_path / "b2", iterations=(1, 1, 1), freeze_steps=0)
    trainer.run()
    assert trainer.batch_size == 2 and [r["iteration"] for r in trainer.history if "loss" in r] == [1, 2, 3]


def test_the_field_term_teaches_the_true_field(tmp_path, template):
    """``field_weight > 0`` on pairs with their true fields: the same 30 steps bring the predicted field closer to the
    truth than similarity alone, and the term is logged; without the truth the step names what is missing."""
    pair = RandomPairDataset(*template, pool_size=2, with_truth=True)[0]
    batch = {k: v[None] for k, v in pair.items()}
    errors = {}
    for weight in (0.0, 0.5):
        model = net(seed=2, levels=1)
        trainer = make_trainer(model, FixedPair(batch), tmp_path / str(weight), iterations=(30,), freeze_steps=0,
                               lr=3e-3, field_weight=weight, checkpoint_every=100)
        trainer.run()
        model.eval()
        with torch.no_grad():
            ddf = model(batch["moving"], batch["fixed"], 1.0)
        inside = (batch["fixed"] > 0).expand_as(ddf[:, :1])[:, 0]
        errors[weight] = (ddf - batch["ddf_truth"]).norm(dim=1)[inside].mean().item()
        assert (trainer.history[-1]["field"] > 0) == (weight > 0)
    assert errors[0.5] < 0.8 * errors[0.0], errors
    without = FixedPair({k: v for k, v in batch.items() if k != "ddf_truth"})
    with pytest.raises(ValueError, match=r"lacks \['ddf_truth'\]: field_weight > 0 needs pairs with their true fields"):
        make_trainer(net(levels=1), without, tmp_path / "x", iterations=(1,), field_weight=1.0).run()
    unlabelled = FixedPair({k: v for k, v in batch.items() if k in ("fixed", "moving")})
    with pytest.raises(ValueError, match="label_weight > 0 needs labelled training pairs$"):
        make_trainer(net(levels=1), unlabelled, tmp_path / "y", iterations=(1,), label_weight=1.0).run()


def test_monai_handlers_plug_in_as_to_monai_trainers(tmp_path, template):
    """The trainer is a MONAI Trainer: MONAI's LrScheduleHandler steps the learning rate every iteration and its
    CheckpointSaver writes the final network, from the handlers list as train.yaml gives them."""
    from monai.engines import Trainer
    from monai.handlers import CheckpointSaver, LrScheduleHandler

    network = net(0)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    handlers = [LrScheduleHandler(torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5),
                                  epoch_level=False, print_lr=False),
                CheckpointSaver(str(tmp_path / "saved"), {"network": network}, save_final=True)]
    trainer = CLapIRNTrainer(network, RandomPairDataset(*template, pool_size=2), tmp_path, optimizer=optimizer,
                             iterations=(2, 2, 2), freeze_steps=0, handlers=handlers)
    assert isinstance(trainer, Trainer) and trainer.engine is trainer
    trainer.run()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)  # 6 steps, halved every 2
    saved = list((tmp_path / "saved").glob("*.pt"))
    assert len(saved) == 1 and set(torch.load(saved[0], weights_only=True)) == set(network.state_dict())


class NaNAtCall(CLapIRNLoss):
    """The paper's loss, made NaN at its ``bad``-th call only: a divergence that a rollback does not replay."""

    def __init__(self, *args, bad: int | tuple[int, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.bad = 0, (bad,) if isinstance(bad, int) else tuple(bad)

    def forward(self, *args, **kwargs):
        terms = super().forward(*args, **kwargs)
        self.calls += 1
        if self.calls in self.bad:
            terms = {**terms, "loss": terms["loss"] * float("nan")}
        return terms


def guarded_trainer(out, data, val, loss=None, max_rollbacks=2, **kwargs):
    from cir_monai.engines.handlers import DivergenceGuard

    network = net(0)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3, fused=True)
    checkpoint = TrainingCheckpoint(out / "checkpoint.pt", network, optimizer, None, 3)
    handlers = [checkpoint, LevelValidation(LevelValidator(network, val, (1.0,), "cpu"), 3)]
    if max_rollbacks is not None:
        handlers.append(DivergenceGuard(out / "checkpoint_good.pt", network, optimizer, None, 3, max_rollbacks, 0.5))
    handlers += default_handlers(out, 1, tensorboard=False)
    return CLapIRNTrainer(network, data, out, optimizer=optimizer, handlers=handlers, log_every=1,
                          loss_function=loss or CLapIRNLoss(3, 3), iterations=(3, 3, 3), freeze_steps=1,
                          fresh_optimizer_per_level=True, final_lr_fraction=0.1, **kwargs)


def test_divergence_guard_rolls_back_to_the_last_good_state_at_half_the_rate(tmp_path, template):
    """A NaN loss at step 5 poisons the weights; the check at step 6 rolls back to step 3's state and the run goes on
    at half the rate. The result equals a run resumed from step 3 with the rate halved: the rollback is exact."""
    from cir_monai.experiments import read_metrics

    data = RandomPairDataset(*template, pool_size=4)
    val = [make_pair(*template, seed=99)]
    guarded = guarded_trainer(tmp_path / "guarded", data, val, loss=NaNAtCall(3, 3, bad=5))
    guarded.run()
    rollbacks = [r for r in guarded.history if "rollback_from" in r]
    assert len(rollbacks) == 1 and rollbacks[0]["iteration"] == 3 and rollbacks[0]["rollback_from"] == 6
    assert rollbacks[0]["lr_scale"] == 0.5
    assert rollbacks[0]["reason"].startswith("non-finite training loss at iteration 5; validation at iteration 6 "
                                             "below no registration and the last good validation at every λ "
                                             "(val_dice@1 0.000")
    assert all(torch.isfinite(p).all() for p in guarded.model.parameters())
    saved = torch.load(tmp_path / "guarded" / "checkpoint.pt", weights_only=True)
    assert saved["iteration"] == 9 and saved["optimizer"]["param_groups"][0]["lr_scale"] == 0.5
    train, _ = read_metrics(tmp_path / "guarded")  # the diverged branch's records are dropped
    assert [r["iteration"] for r in train] == list(range(1, 10)) and all(r["loss"] == r["loss"] for r in train)

    run_until_killed(guarded_trainer(tmp_path / "reference", data, val, max_rollbacks=None), 3)
    state = torch.load(tmp_path / "reference" / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 3
    for group in state["optimizer"]["param_groups"]:
        group["lr_scale"] = 0.5
    torch.save(state, tmp_path / "reference" / "checkpoint.pt")
    resumed = guarded_trainer(tmp_path / "reference", data, val, max_rollbacks=None)
    resumed.run()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, guarded.model.state_dict()[name]), name


def test_divergence_guard_gives_up_with_the_reason(tmp_path, template):
    data = RandomPairDataset(*template, pool_size=4)
    val = [make_pair(*template, seed=99)]
    trainer = guarded_trainer(tmp_path, data, val, loss=NaNAtCall(3, 3, bad=5), max_rollbacks=0)
    with pytest.raises(RuntimeError, match=r"non-finite training loss at iteration 5; .*after 0 rollback"):
        trainer.run()
    trainer = guarded_trainer(tmp_path / "early", data, val, loss=NaNAtCall(3, 3, bad=2))
    with pytest.raises(RuntimeError, match="before any good validation"):
        trainer.run()


def test_a_second_divergence_before_a_new_good_state_halves_the_rate_again(tmp_path, template):
    """Step 5 fails twice (loss calls 5 and 8: the first run and the first rerun), so the run goes back to step 3's
    state twice; the rate must keep falling (x0.25), not restart from the good state's own scale."""
    data = RandomPairDataset(*template, pool_size=4)
    val = [make_pair(*template, seed=99)]
    trainer = guarded_trainer(tmp_path, data, val, loss=NaNAtCall(3, 3, bad=(5, 8)))
    trainer.run()
    assert [r["lr_scale"] for r in trainer.history if "rollback_from" in r] == [0.5, 0.25]
    assert trainer.optimizer.param_groups[0]["rollbacks"] == 2
