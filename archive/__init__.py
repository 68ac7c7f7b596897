"""The 2012 AlexNet release, read losslessly into records (standard library only).

    from archive import load_archive
    archive = load_archive("../shared/AlexNet-Source-Code")
    archive.experiment("120").layers["conv1a"].img_size   # 55
"""
from .catalog import Archive, Dataset, Experiment, InputShape, Result, load_archive
from .cfgfile import CfgFile, parse_cfg, read_cfg
from .layers import LayerDef, LayerGraph, load_layers, parse_layers
from .logbook import Logbook, parse_logbook
from .params import LayerParams, ParamSet, Schedule, load_params, parse_params, parse_schedule
from .source import ArchiveError, Finding, SourceSpan

__all__ = [
    "Archive", "ArchiveError", "CfgFile", "Dataset", "Experiment", "Finding", "InputShape", "LayerDef",
    "LayerGraph", "LayerParams", "Logbook", "ParamSet", "Result", "Schedule", "SourceSpan", "load_archive",
    "load_layers", "load_params", "parse_cfg", "parse_layers", "parse_logbook", "parse_params",
    "parse_schedule", "read_cfg",
]
