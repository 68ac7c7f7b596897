"""archive.layers against the 2012 release and hand-written malformed files.

Every number below was checked by hand against layer.py's rules (ConvLayerParser:
Mx = 1 + ceil((2p + S - fs) / s); PoolLayerParser: ceil((S - start - sizeX) / stride) + 1;
params = weights + biases) before it was written here.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.cfgfile import parse_cfg
from archive.layers import CC2_TYPES, LAYER_TYPES, load_layers, parse_layers, parse_neuron
from archive.source import ArchiveError

IMAGENET = {0: 3 * 224 * 224}  # labels (index 1) are inferred from the cost layers
CIFAR32 = {0: 3 * 32 * 32}
CIFAR24 = {0: 3 * 24 * 24}


def _load(root: Path, rel: str, dims, **kw):
    return load_layers(root / rel, dims, display_path=rel, **kw)


def _parse(text: str, dims=None, **kw):
    return parse_layers(parse_cfg(text, "t.cfg"), dims, **kw)


@pytest.fixture(scope="module")
def release_layer_files(archive_root: Path) -> list[str]:
    files = sorted(str(p.relative_to(archive_root)) for p in archive_root.rglob("layers*.cfg"))
    assert len(files) == 72  # 63 in layers/, 2 in layers-cifar/, 7 in example-layers/
    return files


# --- the whole release ------------------------------------------------------------------------

def test_every_layer_file_reads_leniently(archive_root, release_layer_files):
    for rel in release_layer_files:
        dims = IMAGENET if rel.startswith("layers/") else CIFAR32
        graph = _load(archive_root, rel, dims)
        assert len(graph) > 0
        json.dumps(graph.to_json())
        for layer in graph:  # every key of every section is kept, typed
            assert "type" in layer.settings


def test_imagenet_files_are_accepted_at_224(archive_root):
    files = sorted(archive_root.glob("layers/layers-*.cfg"))
    assert len(files) == 63
    for path in files:
        graph = load_layers(path, IMAGENET, num_gpus=4)
        bad = [str(f) for f in graph.findings if f.severity != "info"]
        assert bad == [], path.name
        if "tree" not in path.name:  # treefc's outputs need the number of classes
            assert all(layer.outputs is not None for layer in graph), path.name


def test_imagenet_files_reject_256(archive_root):
    # conv1: Mx = 1 + ceil((256 - 11) / 4) = 63; 63*63 = 3969 is not divisible by partialSum=5.
    graph = _load(archive_root, "layers/layers-120.cfg", {0: 3 * 256 * 256})
    assert [(f.span.line, f.rule) for f in graph.errors()][:1] == [(32, "layer.partial-sum")]  # conv1a's partialSum=
    # Mx = 55 exactly for S = 224..227; 223 gives 54 (2916 % 5 != 0), 228 gives 56 (3136 % 5 != 0)
    accepted = [s for s in (223, 224, 227, 228)
                if not _load(archive_root, "layers/layers-120.cfg", {0: 3 * s * s}).errors()]
    assert accepted == [224, 227]


def test_layer_type_counts_over_layers_dir(archive_root):
    counts: Counter[str] = Counter()
    for path in sorted(archive_root.glob("layers/layers-*.cfg")):
        counts.update(layer.type for layer in load_layers(path, IMAGENET))
    # checked against `grep -h '^type=' layers/layers-*.cfg | sort | uniq -c`
    assert counts == {
        "conv": 728, "pool": 420, "fc": 359, "hs": 288, "cmrnorm": 272, "data": 126,
        "cost.logreg": 59, "softmax": 59, "rnorm": 53, "blur": 44, "nailbed": 44, "cnorm": 42,
        "concat": 6, "cost.crossent2": 2, "href": 2, "treefc": 2, "cost.rflickr": 1, "cost.sum2": 1,
        "eltsum": 1,
    }


def test_gpus_used(archive_root):
    def gpus(rel):
        return max(layer.gpu for layer in _load(archive_root, rel, IMAGENET)) + 1
    assert gpus("layers/layers-120.cfg") == 2
    assert gpus("layers/layers-117.cfg") == 3
    assert gpus("layers/layers-120-4gpu.cfg") == 4
    assert gpus("layers/layers-145-half.cfg") == 1
    refused = _load(archive_root, "layers/layers-120-4gpu.cfg", IMAGENET, num_gpus=2).errors()
    assert refused and {f.rule for f in refused} == {"layer.gpu-range"}


# --- layers-120: every layer -------------------------------------------------------------------

LAYERS_120 = [  # name, type, gpu, outputs, channels, img_size, params
    ("data", "data", -1, 150528, None, None, 0),
    ("labels", "data", -1, 1, None, None, 0),
    ("blur0", "blur", 0, 150528, 3, 224, 0),
    ("nails0", "nailbed", 0, 9408, 3, 56, 0),          # ceil(224/4) = 56
    ("conv1a", "conv", 0, 96800, 32, 55, 11648),       # 3*11*11*32 + 32
    ("conv1b", "conv", 1, 96800, 32, 55, 11648),
    ("pool1a", "pool", 0, 23328, 32, 27, 0),
    ("pool1b", "pool", 1, 23328, 32, 27, 0),
    ("rnorm1a", "cmrnorm", 0, 23328, 32, 27, 0),
    ("rnorm1b", "cmrnorm", 1, 23328, 32, 27, 0),
    ("conv2a", "conv", 0, 93312, 128, 27, 112128),     # (3 + 32)*25*128 + 128
    ("conv2b", "conv", 1, 93312, 128, 27, 112128),
    ("rnorm2a", "cmrnorm", 0, 93312, 128, 27, 0),
    ("rnorm2b", "cmrnorm", 1, 93312, 128, 27, 0),
    ("cnorm2a", "cnorm", 0, 93312, 128, 27, 0),
    ("cnorm2b", "cnorm", 1, 93312, 128, 27, 0),
    ("pool2a", "pool", 0, 21632, 128, 13, 0),
    ("pool2b", "pool", 1, 21632, 128, 13, 0),
    ("conv3a", "conv", 0, 32448, 192, 13, 442560),     # 2*128*9*192 + 192
    ("conv3b", "conv", 1, 32448, 192, 13, 442560),
    ("conv4a", "conv", 0, 32448, 192, 13, 331968),     # 192*9*192 + 192
    ("conv4b", "conv", 1, 32448, 192, 13, 331968),
    ("conv5a", "conv", 0, 21632, 128, 13, 221312),     # 192*9*128 + 128
    ("conv5b", "conv", 1, 21632, 128, 13, 221312),
    ("pool3a", "pool", 0, 4608, 128, 6, 0),
    ("pool3b", "pool", 1, 4608, 128, 6, 0),
    ("fc2048a", "fc", 0, 2048, None, None, 18876416),  # 2*4608*2048 + 2048
    ("fc2048b", "fc", 1, 2048, None, None, 18876416),
    ("hs1a", "hs", 0, 2048, None, None, 0),
    ("hs1b", "hs", 1, 2048, None, None, 0),
    ("fc2048ba", "fc", 0, 2048, None, None, 8390656),  # 2*2048*2048 + 2048
    ("fc2048bb", "fc", 1, 2048, None, None, 8390656),
    ("hs2a", "hs", 0, 2048, None, None, 0),
    ("hs2b", "hs", 1, 2048, None, None, 0),
    ("fc1000", "fc", 1, 1000, None, None, 4097000),    # 2*2048*1000 + 1000
    ("probs", "softmax", 1, 1000, None, None, 0),
    ("logprob", "cost.logreg", 1, 0, None, None, 0),
]


def test_layers_120_shapes_and_params(archive_root):
    graph = _load(archive_root, "layers/layers-120.cfg", {0: 3 * 224 * 224, 1: 1}, num_gpus=2)
    got = [(l.name, l.type, l.gpu, l.outputs, l.channels, l.img_size, l.params) for l in graph]
    assert got == LAYERS_120
    assert graph.total_params() == 60870376
    assert graph.findings == ()
    conv2a = graph["conv2a"]
    assert conv2a.inputs == ("nails0", "rnorm1a")
    assert conv2a.settings["padding"] == (0, 2) and conv2a.settings["sharedBiases"] is True
    assert conv2a.derived["modulesX"] == 27 and conv2a.derived["filterChannels"] == [3, 32]
    assert conv2a.derived["imgSize"] == [56, 27] and conv2a.derived["neuronLayer"] == "conv2a_neuron"
    assert conv2a.neuron == "relu" and conv2a.line == 79 and not conv2a.unknown_keys
    assert graph["pool1a"].derived["outputsX"] == 27 and graph["nails0"].derived["start"] == 2
    assert graph["conv4a"].gpu == 0 and not graph["conv4a"].gpu_explicit  # inherited from conv3a
    assert graph.consumers("nails0") == ("conv2a", "conv2b")
    assert graph.consumers("hs1a") == ("fc2048ba", "fc2048bb")
    as_json = graph.to_json()
    assert as_json["total_params"] == 60870376
    assert as_json["layers"][4]["settings"]["filterSize"] == [11]


def test_layers_114_total_matches_its_log(archive_root):
    # layer-params-114.cfg's log: "140523240 params (incl biases)" -- weights and biases of the
    # conv, fc layers; nothing else in the file is trainable.
    graph = _load(archive_root, "layers/layers-114.cfg", IMAGENET)
    assert graph.total_params() == 140523240
    assert "140523240 params (incl biases)" in (archive_root / "layers/layer-params-114.cfg").read_text()


# --- CIFAR ------------------------------------------------------------------------------------

CIFAR_18PCT_32 = [  # name, outputs, channels, img_size, params
    ("data", 3072, None, None, 0),
    ("labels", 1, None, None, 0),
    ("conv1", 32768, 32, 32, 2432),      # 1 + ceil((4 + 32 - 5)/1) = 32; 3*25*32 + 32
    ("pool1", 8192, 32, 16, 0),          # ceil((32 - 3)/2) + 1 = 16
    ("rnorm1", 8192, 32, 16, 0),
    ("conv2", 8192, 32, 16, 25632),      # 32*25*32 + 32
    ("pool2", 2048, 32, 8, 0),           # ceil(13/2) + 1 = 8
    ("rnorm2", 2048, 32, 8, 0),
    ("conv3", 4096, 64, 8, 51264),       # 32*25*64 + 64
    ("pool3", 1024, 64, 4, 0),           # ceil(5/2) + 1 = 4
    ("fc10", 10, None, None, 10250),     # 1024*10 + 10
    ("probs", 10, None, None, 0),
    ("logprob", 0, None, None, 0),
]


def test_cifar_18pct_at_32(archive_root):
    graph = _load(archive_root, "layers-cifar/layers-18pct.cfg", CIFAR32, num_gpus=1)
    assert [(l.name, l.outputs, l.channels, l.img_size, l.params) for l in graph] == CIFAR_18PCT_32
    assert graph.total_params() == 89578
    assert not [f for f in graph.findings if f.severity != "info"]


def test_cifar_files_accept_32_and_24(archive_root):
    # Nothing in these files fixes the input size: both 32x32 and 24x24 crops pass every check.
    expected = {  # total params (only fc10's input changes)
        "layers-cifar/layers-18pct.cfg": (89578, 85098),                  # fc10: 1024 vs 576 inputs
        "layers-cifar/layers-conv-local-13pct.cfg": (1901386, 1116490),   # local layers: M = 64 vs 36
    }
    for rel, totals in expected.items():
        for dims, total in zip((CIFAR32, CIFAR24), totals):
            graph = _load(archive_root, rel, dims, num_gpus=1)
            assert graph.errors() == (), rel
            assert graph.total_params() == total, rel
    local3 = _load(archive_root, "layers-cifar/layers-conv-local-13pct.cfg", CIFAR24)["local3"]
    # 6x6 modules, 64 input channels, 3x3 filters, 32 filters, unshared biases
    assert local3.params == 36 * 64 * 9 * 32 + 36 * 32
    assert (local3.outputs, local3.channels, local3.img_size) == (6 * 6 * 32, 32, 6)


def test_example_layers_read_with_the_originals_objections(archive_root):
    graph = _load(archive_root, "example-layers/layers-18pct.cfg", CIFAR32)
    # no gpu= anywhere: gpu resolves to -1 for every layer with inputs (11 of 13)
    gpu_errors = [f for f in graph.errors() if f.rule == "layer.gpu-range"]
    assert len(gpu_errors) == 11 and graph["conv1"].gpu == -1
    # rnorm with the cuda-convnet 1 spelling sizeX: the release requires 'size'
    missing = [(f.span.line, f.rule) for f in graph.errors() if f.rule != "layer.gpu-range"]
    assert missing == [(34, "layer.missing-key"), (65, "layer.missing-key")]
    rnorm1 = graph["rnorm1"]
    assert rnorm1.derived["size"] == 3 and rnorm1.settings["sizeX"] == 3
    assert rnorm1.unknown_keys == ("sizeX", "scale", "pow")
    assert rnorm1.settings["scale"] == 0.00005
    # shapes are read fully all the same (the same net as layers-cifar/layers-18pct.cfg)
    assert graph.total_params() == 89578
    with pytest.raises(ArchiveError) as error:
        _load(archive_root, "example-layers/layers-18pct.cfg", CIFAR32, strict=True)
    assert str(error.value).startswith("example-layers/layers-18pct.cfg:11: ")  # [conv1]
    assert error.value.rule == "layer.gpu-range"


def test_example_gc_file_needs_three_gpus(archive_root):
    assert _load(archive_root, "example-layers/layers.gc.cfg", CIFAR32, num_gpus=3).errors() == ()
    errors = _load(archive_root, "example-layers/layers.gc.cfg", CIFAR32, num_gpus=2).errors()
    # conv32c's gpu=2, rnorm1c inheriting it (section header), fc16c's gpu=2
    assert [(f.span.line, f.rule) for f in errors] == [(52, "layer.gpu-range"), (66, "layer.gpu-range"),
                                                       (91, "layer.gpu-range")]


def test_example_rand_sparse_conv(archive_root):
    graph = _load(archive_root, "example-layers/layers-example.cfg", CIFAR24)
    conv = graph["conv32-3"]
    # filters=32 per group, groups=4: 128 filters; filterChannels=64 of 128 channels: overSample 2
    assert conv.derived["filters"] == 128 and conv.derived["overSample"] == [2]
    assert conv.settings["randSparse"] == (True,) and conv.derived["filterChannels"] == [64]
    assert conv.params == 64 * 25 * 128 + 128


# --- data dimensions --------------------------------------------------------------------------

def test_label_dims_are_inferred(archive_root):
    graph = _load(archive_root, "layers/layers-flickr-103.cfg", IMAGENET)
    assert graph["labels"].outputs == 10003  # the size of cost.rflickr's other input
    graph = _load(archive_root, "layers/layers-flickr-105.cfg", IMAGENET)
    assert graph["labels"].outputs == 10003  # an eltsum's other input
    assert graph.errors() == ()
    graph = _load(archive_root, "layers/layers-120.cfg", {})
    assert graph["labels"].outputs == 1
    assert graph["data"].outputs is None and graph["conv1a"].outputs is None
    assert graph["fc2048a"].outputs == 2048 and graph["fc2048a"].params is None  # its inputs: unknown
    assert graph["fc1000"].params == 4097000  # its inputs are fc layers of known size
    assert graph.total_params() is None
    assert [f.rule for f in graph.findings if f.severity == "warning"] == ["layer.data-dims-unknown"]


def test_num_classes(archive_root):
    tree = _load(archive_root, "layers/layers-137-tree.cfg", IMAGENET, num_classes=1000)
    assert tree["fc1000"].type == "treefc" and tree["fc1000"].outputs == 1000
    assert tree["fc1000"].params is None  # the tree comes from batches.meta, not the file
    wrong = _load(archive_root, "layers/layers-120.cfg", IMAGENET, num_classes=10)
    assert [(f.span.line, f.rule) for f in wrong.errors()] == [(321, "layer.num-classes")]  # logprob's inputs=


# --- malformed input --------------------------------------------------------------------------

GOOD = """\
[data]
type=data
dataIdx=0

[labels]
type=data
dataIdx=1

[conv1]
type=conv
inputs=data
channels=3
filters=16
filterSize=5
padding=2
initW=0.01
partialSum=1
gpu=0

[fc10]
type=fc
inputs=conv1
outputs=10
initW=0.01

[probs]
type=softmax
inputs=fc10

[cost]
type=cost.logreg
inputs=labels,probs
gpu=0
"""


def test_good_fixture_is_clean():
    graph = _parse(GOOD, {0: 3 * 8 * 8}, strict=True)
    assert graph["conv1"].outputs == 8 * 8 * 16 and graph["fc10"].params == 1024 * 10 + 10


@pytest.mark.parametrize("old, new, line, rule", [
    ("[conv1]", "[conv1", 9, "cfg.unclosed-section"),                    # truncated header
    ("filterSize=5", "filterSize=1x", 14, "layer.bad-value"),            # bad number
    ("type=softmax", "type=softmaxx", 27, "layer.unknown-type"),         # unknown type
    ("inputs=fc10\n", "inputs=fc11\n", 28, "layer.input-undefined"),     # missing input layer
    ("inputs=data\n", "inputs=probs\n", 11, "layer.cycle"),              # conv1 -> probs -> ... -> conv1
    ("partialSum=1\n", "", 9, "layer.missing-key"),                      # required key (header line)
    ("outputs=10", "outputs=0", 23, "layer.range"),
    ("filters=16", "filters=12", 13, "layer.divisible"),                 # filters % 16
    ("gpu=0\n\n[fc10]", "gpu=2\n\n[fc10]", 18, "layer.gpu-range"),     # num_gpus=2
    ("inputs=labels,probs", "inputs=probs,labels", 32, "layer.input-dims"),
    ("", "\n[spare]\ntype=softmax\ninputs=fc10\n", 35, "layer.unused"),  # appended, read by none
])
def test_malformed_strict(old, new, line, rule):
    text = GOOD.replace(old, new, 1) if old else GOOD + new
    assert text != GOOD
    with pytest.raises(ArchiveError) as error:
        _parse(text, {0: 3 * 8 * 8}, num_gpus=2, strict=True)
    assert error.value.rule == rule
    assert str(error.value).startswith(f"t.cfg:{line}: ")
    lenient = _parse(text, {0: 3 * 8 * 8}, num_gpus=2)  # never raises; the same objection first
    first = lenient.errors()[0]
    assert (first.span.line, first.rule) == (line, rule)


def test_cycle_is_reported_and_shapes_go_unknown():
    text = GOOD.replace("inputs=data\n", "inputs=probs\n", 1)
    graph = _parse(text, {0: 3 * 8 * 8})
    cycle = [f for f in graph.findings if f.rule == "layer.cycle"]
    assert len(cycle) == 1 and "conv1 -> fc10 -> probs -> conv1" in cycle[0].message
    assert graph["conv1"].outputs is None and graph["fc10"].params is None
    assert graph["probs"].outputs == 10  # fc10 says outputs=10 whatever its input
    assert graph["data"].outputs == 192
    assert any(f.rule == "layer.unused" and "'data'" in f.message for f in graph.findings)


def test_forward_reference_is_resolved_leniently():
    # fc10 moved above conv1: layer.py refuses ("not defined"), we still derive its shape
    head, rest = GOOD.split("[conv1]")
    conv, tail = rest.split("[fc10]")
    fc, tail = tail.split("[probs]")
    graph = _parse(head + "[fc10]" + fc + "[conv1]" + conv + "[probs]" + tail, {0: 3 * 8 * 8})
    assert graph.names()[2:4] == ("fc10", "conv1")
    assert graph["fc10"].params == 1024 * 10 + 10
    assert [f.rule for f in graph.errors()] == ["layer.input-undefined"]


def test_list_length_and_initw_rules():
    text = GOOD.replace("initW=0.01\npartialSum", "initW=0.01,0.02\npartialSum", 1)
    graph = _parse(text, {0: 3 * 8 * 8})
    assert [(f.span.line, f.rule) for f in graph.errors()] == [(16, "layer.list-length")]
    text = GOOD.replace("outputs=10\ninitW=0.01", "outputs=10", 1)  # fc without initW
    graph = _parse(text, {0: 3 * 8 * 8})
    assert [(f.span.line, f.rule) for f in graph.errors()] == [(20, "layer.missing-key")]
    assert graph["fc10"].params == 1024 * 10 + 10


def test_neuron_rules():
    assert parse_neuron("relu") == ("relu", {})
    assert parse_neuron("tanh[1.7159, 0.6666]") == ("tanh", {"a": 1.7159, "b": 0.6666})
    assert parse_neuron("tanh[1e-3,1]") is None  # no exponents in the 2012 regex
    assert parse_neuron("abstanh[1,1]") is None  # a parser class, but never registered
    text = GOOD.replace("outputs=10\n", "outputs=10\nneuron=relu[1]\n", 1)
    text = text.replace("[probs]", "[fc10_neuron]\ntype=neuron\ninputs=fc10\nneuron=ident\n\n[probs]")
    text = text.replace("inputs=fc10\n\n[cost]", "inputs=fc10_neuron\n\n[cost]")
    graph = _parse(text, {0: 3 * 8 * 8})
    assert graph["fc10"].derived["neuronLayer"] == "fc10_neuron.1"  # the name is taken
    assert [f.rule for f in graph.errors()] == ["layer.neuron"]
    assert graph["cost"].neuron is None


def test_weight_sharing_counts_once():
    text = GOOD.replace("[probs]", "[fc10b]\ntype=fc\ninputs=conv1\noutputs=10\ninitW=0.01\n"
                        "weightSource=fc10\n\n[sum]\ntype=eltsum\ninputs=fc10,fc10b\n\n[probs]")
    text = text.replace("type=softmax\ninputs=fc10", "type=softmax\ninputs=sum")
    graph = _parse(text, {0: 3 * 8 * 8}, strict=True)
    assert graph["fc10b"].params == 10  # its weight matrix is fc10's
    assert graph["fc10b"].derived["weightSourceLayers"] == ["fc10"]


# --- other releases ---------------------------------------------------------------------------

CC2_STYLE = """\
[data]
type=data
dataIdx=0

[labels]
type=data
dataIdx=1

[conv1]
type=conv
inputs=data
channels=3
filters=64
filterSize=5
padding=2
initW=0.01
sumWidth=4
gpu=0,1

[drop]
type=dropout2
inputs=conv1

[fc10]
type=fc
inputs=drop
outputs=10
initW=0.01
updatePeriod=2

[probs]
type=softmax
inputs=fc10

[weird]
type=frobnicate
inputs=probs
depth=3

[cost]
type=cost.logreg
inputs=labels,probs
gpu=0
"""


def test_cuda_convnet2_file_is_kept_and_reported():
    graph = _parse(CC2_STYLE, {0: 3 * 8 * 8})
    found = {(f.span.line, f.rule) for f in graph.findings}
    assert (9, "layer.missing-key") in found                   # partialSum (cc2 has sumWidth)
    assert (17, "layer.unknown-key") in found                  # sumWidth
    assert (18, "layer.bad-value") in found                    # gpu=0,1 (data-parallel replicas)
    assert (21, "layer.unknown-type") in found                 # dropout2
    assert (29, "layer.unknown-key") in found                  # updatePeriod
    assert (36, "layer.unknown-type") in found                 # frobnicate
    assert (35, "layer.unused") in found
    conv = graph["conv1"]
    assert conv.settings["sumWidth"] == 4 and conv.settings["gpu"] == "0,1"
    assert conv.gpu == 0 and conv.derived["gpus"] == [0, 1] and conv.outputs == 8 * 8 * 64
    assert graph["drop"].outputs == 8 * 8 * 64 and graph["drop"].type in CC2_TYPES
    assert graph["fc10"].params == 4096 * 10 + 10
    weird = graph["weird"]
    assert weird.type == "frobnicate" and weird.inputs == ("probs",) and weird.settings["depth"] == 3
    assert weird.outputs is None and weird.params is None
    assert graph.total_params() is None
    assert "frobnicate" not in LAYER_TYPES
    with pytest.raises(ArchiveError) as error:
        _parse(CC2_STYLE, {0: 3 * 8 * 8}, strict=True)
    assert str(error.value).startswith("t.cfg:18: ")  # conv1's gpu= comes before partialSum


# --- robustness and speed ---------------------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([
    "[a]", "[b]", "[data]", "type=data", "type=conv", "type=pool", "type=fc", "type=cost.logreg",
    "type=softmax", "type=neuron", "type=cmrnorm", "type=concat", "dataIdx=0", "dataIdx=1",
    "inputs=data", "inputs=a", "inputs=b,data", "inputs=", "channels=3", "channels=0", "filters=16",
    "filterSize=5", "padding=-1", "stride=0", "sizeX=3", "size=0", "pool=max", "outputs=7",
    "initW=0.1", "initW=x", "partialSum=0", "gpu=-3", "neuron=relu", "neuron=tanh[", "%", "[",
    "  continued", "groups=4", "randSparse=1", "filterChannels=0", "weightSource=a[9]",
    "weightSource=b", "outputsX=999999999999999999999999999999999",
]), max_size=40), st.text(max_size=30))
def test_arbitrary_text_never_crashes(lines, noise):
    text = "\n".join(lines) + "\n" + noise
    cfg = parse_cfg(text, "f.cfg")
    graph = parse_layers(cfg, {0: 3 * 8 * 8, 1: 1}, num_gpus=2, num_classes=10)
    json.dumps(graph.to_json())
    try:
        parse_layers(cfg, None, strict=True)
    except ArchiveError as error:
        assert str(error).startswith("f.cfg:")


def test_release_parses_fast(archive_root, release_layer_files):
    import time
    texts = [(rel, (archive_root / rel).read_text()) for rel in release_layer_files]
    start = time.perf_counter()
    for rel, text in texts:
        parse_layers(parse_cfg(text, rel), IMAGENET)
    per_file = (time.perf_counter() - start) / len(texts)
    assert per_file < 0.02  # a few ms each in practice


def test_known_types_cover_the_2012_table():
    assert len(LAYER_TYPES) == 30 and "cost.tica" in LAYER_TYPES and "dropout" not in LAYER_TYPES
