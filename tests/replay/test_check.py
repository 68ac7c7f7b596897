"""replay/check.py and `alexnet-archive replay ID --check`: the whole net's gradients against central
differences in float64, the kink rule, the cnorm marking, and that a wrong gradient is caught."""
from __future__ import annotations

import pytest

from replay.backends import get_backend
from replay.check import (CNORM_RULE, TOLERANCE, TensorCheck, below_cnorm, check_experiment_gradients,
                          format_checks)
from replay.plan import build_plan
from webapp import cli


def test_the_cifar_net_passes(release):
    report = check_experiment_gradients(release.experiment("cifar-18pct-noisylr"), cases=2, seed=0)
    assert report.passed and report.cases == 2
    assert [c.key for c in report.checks] == [p.key for p in build_plan(release.experiment("cifar-18pct-noisylr")).params]
    for check in report.checks:
        assert check.checked == 3 and check.rule is None
        assert check.max_rel_error is not None and check.max_rel_error <= TOLERANCE
    # The input scale keeps the logits moderate: the cost is near, not far above, log(10) per case.
    assert 0.5 < report.cost / report.cases < 10
    text = format_checks(report.checks, header=report.describe())
    assert "ALL 8 TESTS PASSED" in text and text.count("PASS ") == 8
    assert report.to_json()["checks"][0] == report.checks[0].to_json()


def test_a_gradient_one_percent_off_fails(release, monkeypatch):
    numpy = get_backend("numpy")
    right = numpy.conv_backward_weights
    monkeypatch.setattr(numpy, "conv_backward_weights", lambda *a, **k: 1.01 * right(*a, **k))
    report = check_experiment_gradients(release.experiment("cifar-18pct-noisylr"), samples_per_tensor=2)
    verdicts = {c.key: c for c in report.checks}
    assert not report.passed
    for key, check in verdicts.items():
        if key.startswith("conv") and ".weights" in key:
            assert not check.passed and check.max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-3), key
        else:  # biases and fc weights do not use the broken function
            assert check.passed, key
    text = format_checks(report.checks)
    assert "****FAIL****" in text and "3/8 TESTS FAILED" in text


def test_tensors_below_a_cnorm_are_marked_and_judged_by_the_exact_gradient(release):
    experiment = release.experiment("120")
    plan = build_plan(experiment)
    # #120: conv2 -> rnorm2 -> cnorm2 in each tower; everything feeding conv2 lies below it too.
    below = below_cnorm(plan)
    assert {p.layer for p in plan.params if p.layer in below} == {"conv1a", "conv1b", "conv2a", "conv2b"}
    report = check_experiment_gradients(experiment, cases=2, samples_per_tensor=1,
                                        keys=["conv2a.weights[1]", "fc1000.biases"])
    assert report.cases == 1  # an ImageNet-size net is checked on one case
    marked, plain = report.checks
    assert marked.key == "conv2a.weights[1]" and marked.rule == CNORM_RULE
    assert marked.exact_rel_error is not None and marked.passed
    assert plain.rule is None and plain.exact_rel_error is None and plain.passed
    assert "2012 rule: cnorm's mean is held constant" in format_checks(report.checks)


def test_a_cnorm_tensor_fails_only_when_the_exact_gradient_disagrees():
    marked = TensorCheck("conv1.weights[0]", "conv1", 3, 0, 0.2, False, CNORM_RULE, 0.3)
    text = format_checks([marked])
    assert "****FAIL****" in text and "1/1 TESTS FAILED" in text and "3.00e-01" in text
    skipped = format_checks([TensorCheck("fc.biases", "fc", 0, 0, None, True, "no gradient")])
    assert "skipped      fc.biases" in skipped and "ALL 0 TESTS PASSED" in skipped


@pytest.fixture
def use_release(release, monkeypatch):
    monkeypatch.setattr(cli, "_load", lambda args: release)


def test_the_cli_checks_and_exits_with_the_verdict(use_release, capsys):
    assert cli.main(["replay", "example-gc", "--check"]) == 0
    out, _ = capsys.readouterr()
    assert "gradient check of #example-gc" in out and "ALL 20 TESTS PASSED" in out
    assert cli.main(["replay", "flickr-102", "--check"]) == 2
    _, err = capsys.readouterr()
    assert "layers/layers-flickr-102.cfg:" in err and "Flickr multi-label targets" in err


def test_the_cli_exits_1_on_a_failure(use_release, capsys, monkeypatch):
    numpy = get_backend("numpy")
    right = numpy.fc_backward_weights
    monkeypatch.setattr(numpy, "fc_backward_weights", lambda *a, **k: 1.01 * right(*a, **k))
    assert cli.main(["replay", "example-gc", "--check"]) == 1
    out = capsys.readouterr()[0]
    assert "****FAIL**** fc16a.weights[0]" in out and "TESTS FAILED" in out
