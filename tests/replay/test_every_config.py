"""Every (layers, params) pair of the release: Network either runs one SGD step or refuses it clearly.

One step = forward (train), backward, update with the plan's rates at epoch 1, at reduced scale:
minibatch 2, synthetic N(0, 1) input of the net's size, float32. It must give a finite cost and move
some weights. A refusal must be a ReplayError naming the layer and its file:line.

Which pairs Network accepts is decided first (the refusal comes before any weight is drawn, so it is
cheap); then every accepted pair takes its step (all 91: about 5½ minutes on two cores, the longest test
of the suite, and the one that shows every archived configuration really runs).
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from archive.source import ArchiveError
from replay.network import Network, ReplayError
from replay.plan import build_plan

def pairs(release):
    """One experiment per distinct (layers file, params file), in the archive's order."""
    seen = {}
    for e in release.sorted_experiments():
        if e.layers is not None:
            seen.setdefault((e.layers_file, e.params_file), e)
    return list(seen.values())


def refusal(experiment) -> str | None:
    """Network's refusal of the pair (None: accepted), without drawing any weights."""
    try:
        plan = build_plan(experiment)
        original = Network._initialise
        Network._initialise = lambda self, rng: None  # the checks all come before it
        try:
            Network(plan, experiment, rng=np.random.default_rng(0))
        finally:
            Network._initialise = original
    except (ReplayError, ArchiveError) as error:
        return str(error)
    return None


def sgd_step(experiment) -> None:
    plan = build_plan(experiment)
    net = Network(plan, experiment, rng=np.random.default_rng(0), dtype=np.float32)
    rng = np.random.default_rng(1)
    side = plan.input_size
    data = rng.standard_normal((plan.input_channels * side * side, 2)).astype(np.float32)
    probs = next(layer for layer in plan.layers if layer.type == "cost.logreg").inputs[1]
    labels = rng.integers(0, net.layers[probs].outputs, size=(1, 2)).astype(np.float32)
    before = {key: value.copy() for key, value in net.weights.items()}
    costs = net.forward(data, labels, train=True, rng=np.random.default_rng(2))
    assert costs.values and all(np.isfinite(v[0]) for v in costs.values.values()), experiment.id
    net.backward(labels)
    net.update(epoch=1, progress=0.0)
    moving = [p.key for p in plan.params if p.timetable.value_at(1) > 0 and p.key in net.grads]
    changed = [key for key in moving if not np.array_equal(before[key], net.weights[key])]
    assert changed, f"#{experiment.id}: no weight moved (rates > 0 at epoch 1: {moving})"


def split(release):
    accepted, refused = [], {}
    for experiment in pairs(release):
        why = refusal(experiment)
        if why is None:
            accepted.append(experiment)
        else:
            refused[experiment.id] = why
    return accepted, refused


def test_every_pair_is_accepted_or_refused_with_its_place(release):
    accepted, refused = split(release)
    reasons = Counter()
    for eid, why in refused.items():
        # "layer 'name' (file:line): ..." — the layer and the line of the file that stops the replay.
        assert re.match(r"layer '[^']+' \([^():]+\.cfg[^():]*:\d+\): ", why), (eid, why)
        reasons[re.sub(r"^layer '[^']+' \([^)]*\): ", "", why).split(";")[0].split(" (")[0][:60]] += 1
    print(f"\n{len(accepted)} pairs accepted, {len(refused)} refused:")
    for reason, count in reasons.most_common():
        print(f"  {count:3d}  {reason}")
    assert len(accepted) + len(refused) == len(pairs(release))
    # The Flickr costs and the tree layer say what the data lacks.
    assert "Flickr multi-label targets" in refused["flickr-102"] and "cost.crossent2" in refused["flickr-102"]
    assert "Flickr multi-label targets" in refused["flickr-103"]
    assert "Flickr multi-label targets" in refused["flickr-105"]  # sum2 of labels − prediction
    assert "class tree from the data's batches.meta" in refused["137-tree"]
    # Every layer type of the release is replayed: what is refused lacks data, weights or params, not code.
    assert not [why for why in refused.values() if "is not replayed yet" in why]
    assert "126-2012-full" in {e.id for e in accepted}  # its two href layers
    assert len(accepted) > len(refused)


def test_every_accepted_pair_steps(release):
    accepted, _ = split(release)
    for experiment in accepted:
        sgd_step(experiment)
