"""The experiment log in the comment lines of the parameter files (archive/logbook.py),
read from the real release: typed entries line by line, full coverage, runs, results."""
from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from archive.cfgfile import parse_cfg, read_cfg
from archive.logbook import (Change, Event, Logbook, LogEntry, Result, Run, clear_caches, def_file_name,
                             parse_logbook)


def _params_files(root: Path) -> list[Path]:
    """Every parameter file of the release, the editor's .cfg.save included."""
    return sorted(p for folder in ("layers", "layers-cifar", "example-layers")
                  for p in (root / folder).glob("layer-params*.cfg*"))


_books: dict[str, Logbook] = {}


def _book(root: Path, relative: str) -> Logbook:
    if relative not in _books:
        _books[relative] = parse_logbook(read_cfg(root / relative, relative))
    return _books[relative]


def _entry_at(book: Logbook, line: int) -> LogEntry:
    found = [e for e in book.entries if line in e.lines]
    assert len(found) == 1, f"{book.path}:{line} is in {len(found)} entries"
    return found[0]


def _changes(changes: tuple[Change, ...]) -> list[tuple]:
    return [(c.action, c.quantity, c.new, c.old, c.layers, c.scope) for c in changes]


# (file, line, how the line starts, kind, expected fields). Every row was read off the file
# named; "changes"/"settings" list (action, quantity, new, old, layers, scope); "dataset"
# is (name, full, subset).
ROWS = [
    # --- lineage -------------------------------------------------------------------------
    ("layers/layer-params-106.cfg", 161, "# this is like #101 but with contrast", "lineage",
     {"parents": ("101",), "primary": True, "relation": "like",
      "change": "with contrast normalization layers over rnorm2"}),
    # the parenthesis names where the parent ran, and the dataset comes from "trained on"
    ("layers/layer-params-115-jpeg.cfg", 175, "# this is like 115 (on gpu) but trained on ilya's", "lineage",
     {"parents": ("115",), "parent_host": "gpu", "dataset": ("ILSVRC-2010", None, "jpeg")}),
    ("layers/layer-params-120-2012-full.cfg", 161, "# this is like #120 (so uses def file #120) but", "lineage",
     {"parents": ("120",), "layers_file": "120", "dataset": ("ILSVRC-2012", True, None),
      "change": "trained on lsvrc-2012 (full)"}),
    ("layers/layer-params-154.cfg", 180, "# this is like #153 (so uses same file) but", "lineage",
     {"parents": ("153",), "layers_file": "153"}),
    ("layers/layer-params-169.cfg", 195, "# this is like #159 (so uses same def file: 153) but", "lineage",
     {"parents": ("159",), "layers_file": "153"}),
    # "so it uses def file #101." at the end of the sentence
    ("layers/layer-params-107.cfg", 163, "# this is like #101 but uses wcnorm in conv1/conv2.", "lineage",
     {"parents": ("101",), "layers_file": "101"}),
    ("layers/layer-params-107.cfg", 164, "# it's also like #104, but #104 only", "lineage",
     {"parents": ("104",), "primary": False}),
    ("layers/layer-params-156.cfg", 181, "# its also like #154 and #155, but", "lineage",
     {"parents": ("154", "155"), "primary": False}),
    ("layers/layer-params-174.cfg", 196, "# this is also like 172, which uses jdexp", "lineage",
     {"parents": ("172",), "primary": False}),
    ("layers/layer-params-133.cfg", 161, "# this is a hybrid of 131 and 132:", "lineage",
     {"parents": ("131", "132"), "relation": "hybrid"}),
    ("layers/layer-params-129.cfg", 310, "# 4 gpus, based on 120", "lineage",
     {"parents": ("120",), "relation": "based_on"}),
    ("layers/layer-params-145-half.cfg", 90, "# this is #145 but only one column", "lineage",
     {"parents": ("145",), "relation": "is"}),
    ("layers/layer-params-170-256.cfg", 195, "# this is 170 but running with minibatch 256 on krunch:", "lineage",
     {"parents": ("170",), "host": "krunch"}),
    ("layers/layer-params-135-2009-2012.cfg", 165, "# this trains 135 on 2012, initialized from 2009", "lineage",
     {"parents": ("135",), "relation": "trains", "dataset": ("ILSVRC-2012", None, None)}),
    ("layers/layer-params-126-2012-full.cfg", 161, "# this is like #120-2012-full  but", "lineage",
     {"parents": ("120-2012-full",)}),
    # "pretrained on 2011" is not what it trains on; "now training on 2012" is
    ("layers/layer-params-146-2012-2011.cfg", 181, "# this is 146 but pretrained on 2011", "lineage",
     {"parents": ("146",), "dataset": ("ILSVRC-2012", None, None)}),
    # a sentence that runs over two more lines keeps them
    ("layers/layer-params-128.cfg", 162, "# and has narrower columns", "lineage",
     {"parents": ("120",), "lines": (161, 162, 163)}),
    ("layers/layer-params-127.cfg", 161, "# trained on lsvrc-2012 (full), like #120 but", "lineage",
     {"parents": ("120",), "dataset": ("ILSVRC-2012", True, None), "lines": (161, 162, 163)}),
    # --- def file ----------------------------------------------------------------------------
    ("layers/layer-params-170-4gpu.cfg", 405, "# uses config file #153-4gpu", "def_file",
     {"layers_file": "153-4gpu"}),
    ("layers/layer-params-141-2009.cfg", 183, "# using def file layers-141-2009-2010.cfg", "def_file",
     {"layers_file": "layers-141-2009-2010.cfg"}),
    ("layers/layer-params-170-256.cfg", 196, "# use def file 153", "def_file", {"layers_file": "153"}),
    # --- hosts ---------------------------------------------------------------------------------
    ("layers/layer-params-145.cfg", 166, "# on gpu (now guppy9)", "host",
     {"host": "gpu", "now": "guppy9", "action": "on"}),
    ("layers/layer-params-170-256-0.015.cfg", 198, "# krunch", "host", {"host": "krunch", "action": "on"}),
    ("layers/layer-params-149.cfg", 176, "# on guppy", "host", {"host": "guppy"}),
    ("layers/layer-params-120-2012-full.cfg", 166, "# epoch 38: moved to guppy9", "host",
     {"host": "guppy9", "action": "moved", "epoch": 38.0}),
    ("layers/layer-params-120.cfg", 165, "# moving to guppy7", "host", {"host": "guppy7", "action": "moved"}),
    ("layers/layer-params-150.cfg", 172, "# epoch 50: move back to guppy9", "host",
     {"host": "guppy9", "action": "moved", "epoch": 50.0}),
    ("layers/layer-params-145.cfg", 171, "# resuming on guppy9", "host", {"host": "guppy9", "action": "resumed"}),
    ("layers/layer-params-154.cfg", 371, "# resuming from epoch 10 on guppy7", "host",
     {"host": "guppy7", "action": "resumed", "epoch": 10.0}),
    # --- run directories, backups, logs --------------------------------------------------------
    ("layers/layer-params-120-2012-full.cfg", 163, "# /storage/tmp/ConvNet__2012-07-26_04.06.44", "run_dir",
     {"start": datetime(2012, 7, 26, 4, 6, 44), "suffix": "", "path": "/storage/tmp/ConvNet__2012-07-26_04.06.44"}),
    ("layers/layer-params-145.cfg", 194, "# /nobackup/kriz/tmp/ConvNet__2012-09-13_03.43.56.2", "run_dir",
     {"start": datetime(2012, 9, 13, 3, 43, 56), "suffix": ".2"}),
    ("layers/layer-params-178.cfg", 211, "# /nobackup/kriz/tmp/ConvNet__2013-01-19_01.39.21.restart-31/", "run_dir",
     {"suffix": ".restart-31"}),
    ("layers/layer-params-170.cfg", 208, "# /nobackup/kriz/tmp/ConvNet__2013-01-07_04.03.15.layer-170.fade",
     "run_dir", {"suffix": ".layer-170.fade", "start": datetime(2013, 1, 7, 4, 3, 15)}),
    ("layers/layer-params-141-2009.cfg", 202, "# backup: /ais/gobi3/u/kriz/tmp/ConvNet__2012-09-09_03.36.13",
     "backup_dir", {"paths": ("/ais/gobi3/u/kriz/tmp/ConvNet__2012-09-09_03.36.13",
                              "/ais/gobi3/u/kriz/net-backups/"), "lines": (202, 203)}),
    ("layers/layer-params-170.cfg", 197, "# 169 backup at 23 epochs:", "backup_dir",
     {"experiment": "169", "at_epoch": 23.0, "host": "guppy9", "epoch": None}),
    ("layers/layer-params-120.cfg", 163, "# logs/layers-120.log", "log_path", {"path": "logs/layers-120.log"}),
    ("layers/layer-params-114.cfg", 184, "# 140523240 params (incl biases)", "param_count",
     {"count": 140523240, "detail": "(incl biases)"}),
    # --- events -----------------------------------------------------------------------------------
    ("layers/layer-params-120.cfg", 167, "# epoch 26: set epsw to 0.001 from 0.01", "event",
     {"epoch": 26.0, "changes": [("set", "epsw", 0.001, 0.01, (), None)]}),
    # a digit never filled in: the text is kept, the number is not guessed
    ("layers/layer-params-132.cfg", 174, "# epoch 4x: set epsw to 0.0001 from 0.001", "event",
     {"epoch": None, "epoch_text": "4x", "changes": [("set", "epsw", 0.0001, 0.001, (), None)]}),
    # "epstw ot": both typos
    ("layers/layer-params-145-half.cfg", 95, "# epoch 20: set epstw ot 0.001 from 0.01", "event",
     {"epoch": 20.0, "changes": [("set", "epsw", 0.001, 0.01, (), None)]}),
    ("layers/layer-params-135-2009.cfg", 183, "# epoch 4.7822: set epsw to 0.001 from 0.01", "event",
     {"epoch": 4.7822, "epoch_text": "4.7822"}),
    ("layers/layer-params-158.cfg", 186, "# epoch  77: set epsw to 0 from 0.04 on conv1", "event",
     {"epoch": 77.0, "changes": [("set", "epsw", 0.0, 0.04, ("conv1",), None)]}),
    ("layers/layer-params-146-2012-2011.cfg", 186, "# 300 batches: set epsw to 0.01 from 0.001 on fc1000",
     "event", {"epoch": None, "epoch_text": "300 batches", "batch": 300,
               "changes": [("set", "epsw", 0.01, 0.001, ("fc1000",), None)]}),
    # the indented line continues the epoch above it
    ("layers/layer-params-106.cfg", 180, "#           set color noise to 0 from 0.1", "event",
     {"epoch": 61.0, "lines": (179, 180),
      "changes": [("set", "epsw", 0.00001, 0.0001, ("conv1", "conv2"), None),
                  ("set", "color noise", 0.0, 0.1, (), None)]}),
    ("layers/layer-params-170-4gpu.cfg", 409, "# epoch 5: set mini to 256 from 128, epsw to 0.02", "event",
     {"changes": [("set", "mini", 256.0, 128.0, (), None), ("set", "epsw", 0.02, 0.01, (), None)]}),
    ("layers/layer-params-170-4gpu.cfg", 414, "# epoch 49: set color noise 0 from 0.1, set epsw", "event",
     {"changes": [("set", "color noise", 0.0, 0.1, (), None), ("set", "epsw", 0.00008, 0.0005, ("conv1",), None)]}),
    ("layers/layer-params-170-4gpu.cfg", 415, "# epoch 52: set epsw to 0.00008 from 0.0005 everywhere", "event",
     {"changes": [("set", "epsw", 0.00008, 0.0005, (), "everywhere"),
                  ("set", "epsw", 0.0, 0.00008, ("conv1",), None)]}),
    ("layers/layer-params-147.cfg", 171, "# epoch 79: set epsw to 0 on conv1, 0.00001 elsewhere", "event",
     {"changes": [("set", "epsw", 0.0, None, ("conv1",), None), ("set", "epsw", 0.00001, None, (), "elsewhere")]}),
    ("layers/layer-params-141-2009.cfg", 191, "# epoch 36: set epsw to 0 on conv1/2", "event",
     {"changes": [("set", "epsw", 0.0, None, ("conv1", "conv2"), None)]}),
    ("layers/layer-params-146-2009.cfg", 187, "# epoch 2.1600: set epsw to 0.001 from 0.01 on fc, conv6", "event",
     {"epoch": 2.16, "changes": [("set", "epsw", 0.001, 0.01, ("fc", "conv6"), None)]}),
    ("layers/layer-params-146-2012-2009.cfg", 186, "# epoch 3: set conv1 epsw to 0.00001", "event",
     {"changes": [("set", "epsw", 0.00001, 0.0001, ("conv1",), None)]}),
    ("layers/layer-params-170-quant.cfg", 232, "# epoch 74: set epsw conv1 to 0 from 0.01", "event",
     {"changes": [("set", "epsw", 0.0, 0.01, ("conv1",), None)]}),
    ("layers/layer-params-137.cfg", 197, "# epoch 101: set color (brightness) noise to 0 from 0.2", "event",
     {"changes": [("set", "brightness noise", 0.0, 0.2, (), None)]}),
    # three lines: a backup, a change with its qualifier, and the brightness-noise experiment
    ("layers/layer-params-137.cfg", 194, "# epoch 92: made backup to /nobackup/", "event",
     {"lines": (194, 195, 196),
      "changes": [("backup", None, "/nobackup/kriz/tmp/ConvNet__2012-08-25_05.39.04.bak", None, (), None),
                  ("set", "epsw", 0.0001, 0.00001, (), None), ("set", "brightness noise", 0.2, None, (), None)]}),
    ("layers/layer-params-178.cfg", 206, "# epoch 69: set pool2a,pool2b domax=true from false", "event",
     {"changes": [("set", "domax", "true", "false", ("pool2a", "pool2b"), None)]}),
    ("layers/layer-params-170.cfg", 211, "# epoch 107: set epochs to 300 to increase learning rate", "event",
     {"changes": [("set", "epochs", 300.0, None, (), None), ("turn_on", None, 0.1, None, (), None)]}),
    ("layers/layer-params-170.cfg", 212, "# epoch 127: set epsw to  0.0025148669 from 0.01, set schedw", "event",
     {"changes": [("set", "epsw", 0.0025148669, 0.01, (), None),
                  ("set", "schedw", "default", "dexp[250,0,4]", (), None)]}),
    ("layers/layer-params-175.cfg", 201, "# epoch 91: changed schedw factor to 250 from 125", "event",
     {"changes": [("set", "schedw factor", 250.0, 125.0, (), None)]}),
    ("layers/layer-params-109.cfg", 186, "# epoch 26: enabled dropout on hs3a,hs3b", "event",
     {"changes": [("enable", "dropout", None, None, ("hs3a", "hs3b"), None)]}),
    ("example-layers/layer-params-19pct.cfg", 2, "# Set wc to 0 for translations -- 14.2%", "event",
     {"epoch": None, "changes": [("set", "wc", 0.0, None, (), None)]}),
    # --- status -----------------------------------------------------------------------------------
    ("layers/layer-params-120.cfg", 173, "# epoch 106: killed", "status",
     {"status": "killed", "epoch": 106.0, "reason": None}),
    ("layers/layer-params-118.cfg", 167, "# epcoh 98: killed", "status", {"status": "killed", "epoch": 98.0}),
    ("layers/layer-params-134.cfg", 169, "# epoch 13: on hold", "status", {"status": "on_hold", "epoch": 13.0}),
    ("layers/layer-params-128.cfg", 167, "# on hold", "status", {"status": "on_hold", "epoch": None}),
    ("layers/layer-params-145.cfg", 170, "# epoch 36: paused for localization experiments", "status",
     {"status": "paused", "reason": "for localization experiments"}),
    ("layers/layer-params-126-2012-full.cfg", 165, "# killed after 19 epochs..seems no good", "status",
     {"status": "killed", "epoch": 19.0, "reason": "seems no good, and also full sucks we now know"}),
    ("layers/layer-params-132.cfg", 168, "# @#$%&!, killed, i accidentally trained this on full", "status",
     {"status": "killed", "reason": "i accidentally trained this on full"}),
    ("layers/layer-params-170-4gpu.cfg", 413, "# epoch 55: it seems strangely bad, restarting from 35", "status",
     {"status": "restarted", "epoch": 55.0, "from_epoch": 35.0, "reason": "it seems strangely bad"}),
    ("layers/layer-params-161.cfg", 183, "# (guppy7 is dead for now so doing nothing)", "status",
     {"status": "not_started"}),
    ("layers/layer-params-170.cfg", 196, "# not starting this because its first ~24 epochs", "status",
     {"status": "deferred"}),
    ("layers/layer-params-137.cfg", 199, "# experiment a failure. going back to training", "status",
     {"status": "reverted", "path": "/nobackup/kriz/tmp/ConvNet__2012-08-25_05.39.04.bak"}),
    # "killing" at the end, and the "but ..." line after it continues the reason
    ("layers/layer-params-141.cfg", 186, "# epoch 60: this seems overfitty....killing", "status",
     {"status": "killed", "epoch": 60.0, "lines": (186, 187)}),
    ("layers/layer-params-135-2009-2012.cfg", 171, "# epoch 23: putting on hold to train softmax tree", "status",
     {"status": "on_hold", "lines": (171, 172)}),
    ("layers/layer-params-183-4gpu-26epc.cfg", 450, "# # killed in favor of 184", "status",
     {"status": "killed", "reason": "in favor of 184"}),
    # --- results ----------------------------------------------------------------------------------
    ("layers/layer-params-120.cfg", 174, "# logprob:  1.634692, 0.378533, 0.172360", "result",
     {"cost": 1.634692, "top1": 0.378533, "top5": 0.172360, "multiview": None, "split": None, "form": "logprob",
      "label": None}),
    ("layers/layer-params-106.cfg", 184, "# [1.5942473039940013, 0.3705782743769917, 0.16672222296297284]",
     "result", {"cost": 1.5942473039940013, "top1": 0.3705782743769917, "form": "list"}),
    # (294, top1, top5): 294 is no log-prob cost
    ("layers/layer-params-98-16kinit.cfg", 164, "# (294, 0.37132068707483007, 0.1679778095238095)", "result",
     {"cost": None, "top1": 0.37132068707483007, "top5": 0.1679778095238095, "form": "tuple",
      "values": (294.0, 0.37132068707483007, 0.1679778095238095)}),
    ("layers/layer-params-inet-5layer-conv94-2gpu.cfg", 164, "# 0.38107167346938753, 0.17608947619047613",
     "result", {"cost": None, "top1": 0.38107167346938753, "top5": 0.17608947619047613, "form": "pair"}),
    # the label on its own line joins its result
    ("layers/layer-params-120-2012.cfg", 172, "# logprob:  1.765247, 0.410440, 0.187140", "result",
     {"lines": (171, 172), "label": "validation multiview error:", "multiview": True, "split": "validation",
      "cost": 1.765247}),
    ("layers/layer-params-137.cfg", 183, "# logprob:  1.623185, 0.376167, 0.171247", "result",
     {"lines": (182, 183), "multiview": True, "split": "test"}),
    ("layers/layer-params-145-2010.cfg", 180, "# logprob:  1.706031, 0.390247, 0.182953 (NOTE, NOT MULTIVIEW!!)",
     "result", {"lines": (179, 180), "multiview": False, "split": "test", "remark": "(NOTE, NOT MULTIVIEW!!)"}),
    ("layers/layer-params-148.cfg", 148, "# logprob:  1.822358, 0.420340, 0.193620 (1.4% top-1 worse", "result",
     {"remark": "(1.4% top-1 worse than 145)", "multiview": True, "top1": 0.42034}),
    ("layers/layer-params-157.cfg", 187, "# valid:            logprob:  1.880485", "result",
     {"split": "validation", "multiview": None, "label": "valid:", "cost": 1.880485}),
    ("layers/layer-params-157.cfg", 188, "# multiview valid:  logprob:  1.767696", "result",
     {"split": "validation", "multiview": True}),
    ("layers/layer-params-160.cfg", 186, "# validation:              1.884187, 0.433855, 0.205452", "result",
     {"form": "bare", "split": "validation", "cost": 1.884187}),
    ("layers/layer-params-160.cfg", 187, "# validation multiview: :  1.789202", "result",
     {"multiview": True, "cost": 1.789202}),
    ("layers/layer-params-145-half.cfg", 100, "# test multiview logprob:  1.702802", "result",
     {"split": "test", "multiview": True, "top5": 0.182287}),
    ("layers/layer-params-170-256-double.cfg", 202, "# after 84 epochs: logprob:  1.840643", "result",
     {"epoch": 84.0, "epoch_text": "after 84 epochs", "cost": 1.840643}),
    # indented only to line up with the "multiview logprob:" line below: a result, not a continuation
    ("layers/layer-params-165.cfg", 203, "#           logprob:  1.847919, 0.427840, 0.198452", "result",
     {"lines": (203,), "multiview": None, "cost": 1.847919}),
    ("layers/layer-params-165.cfg", 204, "# multiview logprob:  1.757196, 0.409820, 0.183920", "result",
     {"multiview": True, "cost": 1.757196}),
    # the command's --multiview-test flag says which view the next line measured
    ("layers/layer-params-141-2009.cfg", 212, "# logprob:  1.671316, 0.395620, 0.172060", "result",
     {"multiview": True, "command_line": 211}),
    ("layers/layer-params-141-2009.cfg", 214, "# logprob:  1.779082, 0.415920, 0.186780", "result",
     {"multiview": False, "command_line": 213}),
    ("layers/layer-params-141-2009.cfg", 213, "#python convnet.py -f /nobackup/kriz/tmp/", "command",
     {"multiview_test": False}),
    ("layers/layer-params-178.cfg", 207, "# 1.85 :(", "result", {"cost": 1.85, "form": "cost", "remark": ":("}),
    ("example-layers/layer-params-18pct.cfg", 1, "# 18% error on CIFAR-10 in 20 minutes", "result",
     {"top1": 0.18, "form": "percent", "dataset": ("CIFAR-10", None, None)}),
    # --- init -------------------------------------------------------------------------------------
    ("layers/layer-params-135-2009-2012.cfg", 167, "# init epsw 0.001", "init",
     {"settings": [("init", "epsw", 0.001, None, (), None)]}),
    ("layers/layer-params-146-2012-2009.cfg", 182, "# init epsw 0.001, 0.0001 on conv1", "init",
     {"settings": [("init", "epsw", 0.001, None, (), None), ("init", "epsw", 0.0001, None, ("conv1",), None)]}),
    ("layers/layer-params-146-2009.cfg", 185, "# init epsw 0.001 on conv1-5, 0.01 on fc, conv6", "init",
     {"settings": [("init", "epsw", 0.001, None, ("conv1", "conv2", "conv3", "conv4", "conv5"), None),
                   ("init", "epsw", 0.01, None, ("fc", "conv6"), None)]}),
    ("layers/layer-params-146-2011.cfg", 206, "# init epw 0.001 on conv layers, 0.01 on fc", "init",
     {"settings": [("init", "epsw", 0.001, None, (), "conv layers"), ("init", "epsw", 0.01, None, ("fc",), None)]}),
    ("layers/layer-params-145.cfg", 195, "# start epsw 0.001 (still 0 on conv1)", "init",
     {"settings": [("init", "epsw", 0.001, None, (), None)]}),
    ("layers/layer-params-145.cfg", 196, "# color noise put back to 0.1", "init",
     {"settings": [("init", "color noise", 0.1, None, (), None)]}),
    ("layers/layer-params-141-2009.cfg", 182, "# initialized from 141 trained on lsvrc-2012, then 2009", "init",
     {"source_experiment": "141", "source_path": None}),
    ("layers/layer-params-174.cfg", 199, "# initialized from 24 epochs of #169", "init",
     {"source_experiment": "169", "source_epochs": 24.0}),
    ("layers/layer-params-98-16kinit.cfg", 155, "# weights initialized from net trained on 16k imgnet", "init",
     {"source_path": "/ais/gobi3/u/kriz/tmp/ConvNet__2012-06-24_02.01.57"}),
    # --- datasets and headings --------------------------------------------------------------------
    ("layers/layer-params-137.cfg", 167, "# on lsvrc-2010:", "dataset", {"dataset": ("ILSVRC-2010", None, None)}),
    ("layers/layer-params-145.cfg", 184, "# on 2012-full:", "dataset", {"dataset": ("ILSVRC-2012", True, None)}),
    ("layers/layer-params-145-half.cfg", 92, "# trained on 2010", "dataset",
     {"dataset": ("ILSVRC-2010", None, None)}),
    ("layers/layer-params-135-2009.cfg", 179, "# now let's train on 2009 1-8800", "dataset",
     {"dataset": ("ImageNet-2009", None, "1-8800")}),
    ("layers/layer-params-135-2009-2012.cfg", 174, "# 135 notes:", "heading",
     {"experiment": "135", "action": "notes"}),
    ("layers/layer-params-141-2009.cfg", 216, "# 141-2009 notes, before going back to 2012:", "heading",
     {"experiment": "141-2009"}),
    ("layers/layer-params-132.cfg", 170, "# restart:", "heading", {"action": "restart", "experiment": None}),
    ("layers/layer-params-178.cfg", 209, "# restart from 31, turning off rnadomness", "heading",
     {"action": "restart", "from_epoch": 31.0}),
    ("layers/layer-params-137.cfg", 203, "# batch size 128 x 8:", "heading", {"action": None}),
    ("layers/layer-params-170.cfg", 227, "# now with fade probability 0.15 instead of 0.05:", "heading", {}),
    # --- kept verbatim ------------------------------------------------------------------------------
    ("layers/layer-params-129.cfg", 315, "# uhh.. relu wiped this. nice.", "note", {}),
    ("layers/layer-params-162.cfg", 187, "# validation multiview: ah screw it, it'll suck", "note", {}),
    ("layers/layer-params-141-2009-half.cfg", 194, "# epoch 56: eek, it started getting worse", "note",
     {"epoch": 56.0}),
]


@pytest.mark.parametrize("path,line,starts,kind,expected", ROWS, ids=[f"{r[0].split('-params-')[-1]}:{r[1]}"
                                                                      for r in ROWS])
def test_real_line_reads_as(archive_root, path, line, starts, kind, expected):
    book = _book(archive_root, path)
    raw = (archive_root / path).read_text().splitlines()[line - 1]
    assert raw.startswith(starts), f"{path}:{line} is {raw!r}"
    entry = _entry_at(book, line)
    assert entry.kind == kind, (entry.kind, entry.text)
    for key, want in expected.items():
        got = getattr(entry, key)
        if key in ("changes", "settings"):
            got = _changes(got)
        elif key == "dataset":
            got = got and (got.name, got.full, got.subset)
        assert got == want, f"{key}: {got!r} != {want!r}"
    assert entry.span.line == entry.lines[0] and entry.span.path == path


def test_every_comment_line_lands_in_exactly_one_entry(archive_root, release_cfg_files):
    for path in release_cfg_files:  # the layer-definition files have a few comments too
        cfg = read_cfg(path, path.relative_to(archive_root).as_posix())
        book = parse_logbook(cfg)
        covered = sorted(n for e in book.entries for n in e.lines)
        assert covered == [line.number for line in cfg.comment_lines()], cfg.path
        for entry in book.entries:  # verbatim: the text is the lines' comment text
            assert entry.text == "\n".join(cfg.lines[n - 1].comment_text for n in entry.lines)
            assert 0 <= entry.run < len(book.runs) and book.entries.index(entry) in book.runs[entry.run].entries


def test_release_counts_and_note_share(archive_root, capsys):
    books = [parse_logbook(read_cfg(p, p.relative_to(archive_root).as_posix()))
             for p in _params_files(archive_root)]
    lines = sum(len(b.lines_covered()) for b in books)
    entries = sum(len(b.entries) for b in books)
    typed = sum(b.typed_count() for b in books)
    notes = sum(b.note_count() for b in books)
    note_lines = sum(len(e.lines) for b in books for e in b.entries if e.kind == "note")
    with capsys.disabled():
        print(f"\nlogbook: {len(books)} params files, {lines} comment lines, {entries} entries "
              f"({typed} typed, {notes} notes on {note_lines} lines = {note_lines / lines:.1%})")
    assert len(books) == 107
    assert lines == 1118  # grep -c '^\s*[#;]' over the 107 parameter files
    assert typed + notes == entries
    assert note_lines / lines < 0.03  # measured: 23 note lines of 1118 (2.1%)
    kinds = {e.kind for b in books for e in b.entries}
    assert kinds == {"lineage", "def_file", "host", "run_dir", "backup_dir", "log_path", "event", "status",
                     "result", "command", "param_count", "init", "dataset", "heading", "note"}


def _runs(book: Logbook) -> list[tuple]:
    return [(r.start, r.hosts) for r in book.runs]


def test_runs_of_106_three_restarts(archive_root):
    book = _book(archive_root, "layers/layer-params-106.cfg")
    assert _runs(book) == [(datetime(2012, 7, 7, 21, 11, 34), ("guppy7",)),
                           (datetime(2012, 7, 17, 19, 6, 9), ("guppy9",)),
                           (datetime(2012, 7, 19, 4, 15, 40), ())]
    assert [r.label for r in book.runs] == [None, "restart after fixing cnorm", "restart with proper learning rate"]
    assert [r.status for r in book.runs] == ["killed", None, "killed"]
    assert [r.last_epoch for r in book.runs] == [31.0, 21.0, 93.0]
    assert book.runs[0].parents == ("101",)


def test_runs_of_130_new_directory_takes_its_host_and_log(archive_root):
    book = _book(archive_root, "layers/layer-params-130.cfg")
    assert _runs(book) == [(datetime(2012, 8, 7, 13, 31, 34), ("guppy8",)),
                           (datetime(2012, 8, 9, 14, 9, 20), ("guppy9",))]
    assert [r.log_paths for r in book.runs] == [("logs/layers-130.log",), ("logs/layers-130a.log",)]
    assert _entry_at(book, 314).run == 0 and _entry_at(book, 315).run == 1  # "uhh.. relu" stays behind


def test_runs_of_135_2009_2012_with_copied_notes(archive_root):
    book = _book(archive_root, "layers/layer-params-135-2009-2012.cfg")
    assert _runs(book) == [(datetime(2012, 9, 9, 15, 20, 47), ("guppy9",)),
                           (datetime(2012, 8, 21, 1, 49, 23), ("guppy8",)),
                           (datetime(2012, 8, 26, 22, 39, 45), ("guppy9",))]
    assert [r.experiment for r in book.runs] == [None, "135", None]
    assert [r.status for r in book.runs] == ["on_hold", "killed", "killed"]
    assert [r.dataset and r.dataset.name for r in book.runs] == ["ILSVRC-2012", None, "ImageNet-2009"]
    assert book.runs[2].last_epoch == 17.0


def test_runs_of_137_description_block_joins_the_first_run(archive_root):
    book = _book(archive_root, "layers/layer-params-137.cfg")
    assert _runs(book) == [(datetime(2012, 9, 13, 2, 47, 12), ("guppy9",)),
                           (datetime(2012, 8, 25, 5, 39, 4), ("guppy8",)),
                           (datetime(2012, 9, 7, 17, 8, 47), ())]
    assert [r.label for r in book.runs] == ["on lsvrc-2010", "on lsvrc-2012", "batch size 128 x 8"]
    assert book.runs[0].parents == ("135",)
    assert [r.last_epoch for r in book.runs] == [103.0, 105.0, 34.0]


def test_runs_of_145_same_directory_moving_host_is_one_run(archive_root):
    book = _book(archive_root, "layers/layer-params-145.cfg")
    assert _runs(book) == [(datetime(2012, 9, 13, 3, 43, 56), ("gpu", "guppy9", "guppy8")),
                           (datetime(2012, 9, 23, 19, 38, 45), ("guppy7", "gpu")),
                           (datetime(2012, 9, 13, 3, 43, 56), ("guppy9",))]
    first = book.runs[0]
    assert first.run_dirs == ("/storage/tmp/ConvNet__2012-09-13_03.43.56",
                              "/nobackup/kriz/tmp/ConvNet__2012-09-13_03.43.56")
    assert first.log_paths == ("logs/layers-145.log", "logs/layers-145-cont.log")
    assert book.runs[2].run_dirs == ("/nobackup/kriz/tmp/ConvNet__2012-09-13_03.43.56.2",)


def test_runs_of_170_five_blocks(archive_root):
    book = _book(archive_root, "layers/layer-params-170.cfg")
    assert _runs(book) == [(datetime(2013, 1, 7, 4, 3, 15), ("guppy8",)),
                           (datetime(2013, 1, 7, 4, 3, 15), ("guppy8",)),
                           (datetime(2013, 1, 31, 18, 52, 37), ("guppy8",)),
                           (datetime(2013, 2, 6, 8, 27, 55), ("krunch", "guppy9")),
                           (datetime(2013, 2, 23, 12, 16, 26), ("guppy9", "guppy5"))]
    # "not starting this because ..." came before the run's directory: not its final status
    assert book.runs[0].status is None and book.runs[0].layers_file == "153"
    assert book.runs[1].last_epoch == 137.0


def test_runs_of_154_restated_block_is_one_run(archive_root):
    book = _book(archive_root, "layers/layer-params-154.cfg")
    assert len(book.runs) == 1
    run = book.runs[0]
    assert run.hosts == ("guppy9", "gpu", "guppy7")
    assert run.run_dirs == ("/nobackup/kriz/tmp/ConvNet__2012-12-18_23.40.29",
                            "/storage/tmp/ConvNet__2012-12-18_23.40.29")
    assert [e.repeat_of for e in book.entries if e.repeat_of] == [180, 181, 182, 183, 184]
    assert _entry_at(book, 364).repeat_of == 180 and _entry_at(book, 369).repeat_of is None


def _results(book: Logbook) -> list[tuple]:
    return [(r.cost, r.top1, r.top5, r.multiview, r.split) for r in book.entries if isinstance(r, Result)]


def test_results_table(archive_root):
    assert _results(_book(archive_root, "layers/layer-params-120.cfg")) == [
        (1.634692, 0.378533, 0.172360, None, None)]
    assert _results(_book(archive_root, "layers/layer-params-131.cfg")) == [
        (1.755725, 0.409340, 0.185740, True, "validation")]
    assert _results(_book(archive_root, "layers/layer-params-137.cfg")) == [
        (1.727592, 0.394153, 0.182784, None, "validation"),
        (1.632875, 0.377960, 0.171020, True, "validation"),
        (1.623185, 0.376167, 0.171247, True, "test"),
        (1.751138, 0.407820, 0.183440, None, None)]
    assert _results(_book(archive_root, "layers/layer-params-141-2009.cfg")) == [
        (1.511725, 0.356707, 0.154893, None, None),
        (1.671316, 0.395620, 0.172060, True, None),
        (1.779082, 0.415920, 0.186780, False, None)]


def test_json_shapes(archive_root):
    book = _book(archive_root, "layers/layer-params-120.cfg")
    data = json.loads(json.dumps(book.to_json()))
    assert set(data) == {"path", "entries", "runs"}
    result = data["entries"][-1]
    assert result == {"kind": "result", "span": 174, "lines": [174], "text": " logprob:  1.634692, 0.378533, 0.172360",
                      "epoch": None, "epoch_text": None, "run": 0, "repeat_of": None, "cost": 1.634692,
                      "top1": 0.378533, "top5": 0.17236, "values": [1.634692, 0.378533, 0.17236], "form": "logprob",
                      "multiview": None, "split": None, "label": None, "remark": None, "dataset": None,
                      "command_line": None}
    event = data["entries"][8]
    assert event["kind"] == "event" and event["changes"][0] == {
        "action": "set", "quantity": "epsw", "new": 0.00001, "old": 0.0001, "layers": ["conv1", "conv2"],
        "scope": None, "qualifier": None, "text": "set epsw to 0.00001 from 0.0001 on conv1,conv2"}
    run = data["runs"][0]
    assert run["start"] == "2012-07-22T04:40:34" and run["hosts"] == ["gpu", "guppy7"]
    assert run["entries"] == list(range(len(data["entries"])))
    for path in _params_files(archive_root):  # every file's log is plain JSON
        json.dumps(_book(archive_root, path.relative_to(archive_root).as_posix()).to_json())


def test_def_file_name():
    assert def_file_name("153") == "layers-153.cfg"
    assert def_file_name("#153-4gpu") == "layers-153-4gpu.cfg"
    assert def_file_name("layers-141-2009-2010.cfg") == "layers-141-2009-2010.cfg"


def test_parsing_the_whole_release_is_fast(archive_root):
    cfgs = [read_cfg(p, p.name) for p in _params_files(archive_root)]
    best = float("inf")
    for _ in range(5):
        clear_caches()  # cold: no line read before
        start = time.perf_counter()
        for cfg in cfgs:
            parse_logbook(cfg)
        best = min(best, time.perf_counter() - start)
    assert best < 0.020, f"{best * 1000:.1f} ms"


# --- hand-written text --------------------------------------------------------------------------

def _parse(text: str) -> Logbook:
    return parse_logbook(parse_cfg(text, "t.cfg"))


def test_empty_comment_lines_join_an_entry_or_stand_alone():
    book = _parse("#\n# on guppy9\n#\n\n#\n#  \n")
    assert [(e.kind, e.lines) for e in book.entries] == [("host", (1, 2, 3)), ("note", (5, 6))]


def test_label_without_result_is_a_note_and_no_lines_are_lost():
    book = _parse("# validation multiview:\n# on guppy8\n# test multiview:\n")
    assert [(e.kind, e.lines) for e in book.entries] == [("note", (1,)), ("host", (2,)), ("note", (3,))]


def test_unknown_lines_are_notes_and_runs_split_on_blank_lines():
    book = _parse("[conv1]\nepsW=0.01\n# zzz\n# epoch 7: frobnicated\n\n"
                  "# restart:\n# /x/ConvNet__2012-13-45_99.99.99\n")
    assert [e.kind for e in book.entries] == ["note", "note", "heading", "run_dir"]
    assert book.entries[1].epoch == 7.0
    assert book.entries[3].start is None  # month 13: no date, the path is kept
    assert [r.entries for r in book.runs] == [(0, 1), (2, 3)]
    assert book.typed_count() == 2 and book.note_count() == 2 and book.lines_covered() == {3, 4, 6, 7}


def test_a_run_directory_with_another_timestamp_starts_a_run():
    book = _parse("# on guppy7\n# /a/ConvNet__2012-06-26_20.35.00\n# on guppy9\n# logs/x.log\n"
                  "# /a/ConvNet__2012-06-27_03.57.56\n# /b/ConvNet__2012-06-27_03.57.56\n")
    assert [(r.hosts, r.log_paths, len(r.run_dirs)) for r in book.runs] == [
        (("guppy7",), (), 1), (("guppy9",), ("logs/x.log",), 2)]


def test_no_comments_no_entries():
    book = _parse("[fc10]\nepsW=0.001\n")
    assert book.entries == () and book.runs == () and book.to_json() == {"path": "t.cfg", "entries": [], "runs": []}


def test_entries_are_frozen():
    entry = _parse("# epoch 1: set epsw to 0.1 from 0.2\n").entries[0]
    assert isinstance(entry, Event)
    with pytest.raises(AttributeError):
        entry.epoch = 2.0  # type: ignore[misc]
    assert isinstance(_parse("# 4 gpus, based on 120\n").runs[0], Run)
