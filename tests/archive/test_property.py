"""Property: whatever text a file holds, reading it raises nothing but the
archive's own error type, and the text always renders back unchanged."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.cfgfile import parse_cfg
from archive.layers import parse_layers
from archive.logbook import parse_logbook
from archive.params import parse_params
from archive.source import ArchiveError

# Text built from the dialect's own pieces finds the interesting corners faster than random bytes.
pieces = st.sampled_from([
    "[", "]", "[conv1]", "[data]", "[fc]", "=", ":", ";", "#", " ", "\t", "\n", "\r\n", "\r", ",", "%",
    "type", "type=", "conv", "data", "fc", "pool", "cmrnorm", "rnorm", "cnorm", "softmax", "cost.logreg",
    "hs", "local", "blur", "nailbed", "concat", "eltsum", "href", "treefc", "neuron=", "relu", "tanh[1,1]",
    "inputs=", "inputs=data", "inputs=conv1", "channels=", "filters=", "filterSize=", "padding=", "stride=",
    "sizeX=", "size=", "outputs=", "initW=", "partialSum=", "groups=", "gpu=", "dataIdx=", "epsW=", "schedW=",
    "dexp[", "tgtFactor=", "250", "0", "4", "-1", "1e9", "0.001", "nan", "inf", "x", "2012-07-26_04.06.44",
    "epoch ", "epoch 23: set epsw to 0.001 from 0.01", "logprob: ", "1.6, 0.37, 0.17", "on guppy9",
    "this is like #", "ConvNet__", "killed", "rem ", "é", "\x00",
])
texts = st.one_of(st.text(max_size=300), st.lists(pieces, max_size=80).map("".join))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_arbitrary_text_raises_only_archive_errors(text):
    cfg = parse_cfg(text, "fuzz.cfg")
    assert cfg.render() == text
    for strict in (False, True):
        for parse in (parse_layers, parse_params):
            kwargs = {"strict": strict}
            try:
                if parse is parse_layers:
                    parse(cfg, {0: 3 * 32 * 32, 1: 1}, **kwargs)
                else:
                    parse(cfg, **kwargs)
            except ArchiveError as error:
                assert str(error).startswith("fuzz.cfg:")
    logbook = parse_logbook(cfg)
    covered = sorted(n for e in logbook.entries for n in e.lines)
    assert covered == [line.number for line in cfg.comment_lines()]
