"""The machines: `deviceQuery.txt` and `SdkMasterLog.csv` as records.

The release keeps the output of NVIDIA's SDK sample `deviceQuery` (CUDA 4.2)
run on a four-GPU host (`/u/kriz/...`), and `SdkMasterLog.csv`, the one-line
summary the SDK samples append to a log in the working directory. Every
``Key: value`` line is kept verbatim with its line number; the facts a
historian asks for (memory, cores, clocks, capability) are typed as well.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .cfgfile import read_text, split_lines
from .source import ArchiveError, Finding, SourceSpan

__all__ = ["GpuDevice", "PeerAccess", "DeviceQuery", "SdkLogRecord", "Machines",
           "parse_device_query", "parse_sdk_master_log", "load_machines",
           "DEVICE_QUERY_FILE", "SDK_LOG_FILE"]

DEVICE_QUERY_FILE = "deviceQuery.txt"
SDK_LOG_FILE = "SdkMasterLog.csv"




# --------------------------------------------------------------------------
# SdkMasterLog.csv lines ("deviceQuery, CUDA Driver = CUDART, ..., Device = X")
# --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SdkLogRecord:
    """One summary line: the sample's name, then ``key = value`` pairs.

    pairs: every pair in order, as written; fields: the same by key, with a
    repeated key (``Device``) gathered into a tuple; extra: comma-separated
    pieces that are not ``key = value``.
    """

    span: SourceSpan
    text: str
    tool: str
    pairs: tuple[tuple[str, str], ...]
    fields: dict[str, str | tuple[str, ...]] = field(repr=False)
    extra: tuple[str, ...] = ()

    @property
    def line(self) -> int:
        return self.span.line

    def _one(self, key: str) -> str | None:
        value = self.fields.get(key)
        return value if isinstance(value, str) else None

    @property
    def driver(self) -> str | None:
        return self._one("CUDA Driver")

    @property
    def driver_version(self) -> str | None:
        return self._one("CUDA Driver Version")

    @property
    def runtime_version(self) -> str | None:
        return self._one("CUDA Runtime Version")

    @property
    def num_devs(self) -> int | None:
        value = self._one("NumDevs")
        return int(value) if value is not None and value.isascii() and value.isdigit() else None

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(value for key, value in self.pairs if key == "Device")

    def to_json(self) -> dict:
        return {
            "span": self.span.to_json(), "text": self.text, "tool": self.tool,
            "pairs": [[k, v] for k, v in self.pairs],
            "fields": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.fields.items()},
            "extra": list(self.extra),
            "driver": self.driver, "driver_version": self.driver_version,
            "runtime_version": self.runtime_version, "num_devs": self.num_devs,
            "devices": list(self.devices),
        }


def _log_record(text: str, span: SourceSpan) -> SdkLogRecord:
    pieces = [piece.strip() for piece in text.split(",")]
    tool = pieces[0] if "=" not in pieces[0] else ""
    pairs: list[tuple[str, str]] = []
    extra: list[str] = []
    for piece in pieces[1:] if tool or not pieces[0] else pieces:
        key, equals, value = piece.partition("=")
        if equals and key.strip():
            pairs.append((key.strip(), value.strip()))
        elif piece:
            extra.append(piece)
    fields: dict[str, str | tuple[str, ...]] = {}
    for key, value in pairs:
        if key in fields:
            old = fields[key]
            fields[key] = (*old, value) if isinstance(old, tuple) else (old, value)
        else:
            fields[key] = value
    return SdkLogRecord(span, text, tool, tuple(pairs), fields, tuple(extra))


def parse_sdk_master_log(text: str, path: str = SDK_LOG_FILE) -> tuple[SdkLogRecord, ...]:
    """One record per non-blank line. Never raises: pieces that are not
    ``key = value`` are kept in `extra`."""
    return tuple(_log_record(body.strip(), SourceSpan(path, number))
                 for number, (body, _) in enumerate(split_lines(text), start=1) if body.strip())


# --------------------------------------------------------------------------
# deviceQuery.txt
# --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One ``Device N: "name"`` block. Typed fields are None when the line is
    absent or unreadable; `properties` keeps every line's text verbatim
    (key without its colon; a ``< ... >`` continuation joined to its key)."""

    index: int
    name: str
    span: SourceSpan
    driver_version: str | None
    runtime_version: str | None
    compute_capability: str | None
    global_memory_bytes: int | None
    multiprocessors: int | None
    cores_per_multiprocessor: int | None
    cuda_cores: int | None
    gpu_clock_mhz: int | None
    memory_clock_mhz: int | None
    memory_bus_bits: int | None
    l2_cache_bytes: int | None
    constant_memory_bytes: int | None
    shared_memory_per_block: int | None
    registers_per_block: int | None
    warp_size: int | None
    max_threads_per_multiprocessor: int | None
    max_threads_per_block: int | None
    max_block_dims: tuple[int, ...] | None
    max_grid_dims: tuple[int, ...] | None
    ecc_enabled: bool | None
    unified_addressing: bool | None
    pci_bus_id: int | None
    pci_location_id: int | None
    compute_mode: str | None
    properties: dict[str, str] = field(repr=False)
    property_lines: dict[str, int] = field(repr=False)

    def to_json(self) -> dict:
        data = {name: getattr(self, name) for name in _DEVICE_TYPED}
        for name in ("max_block_dims", "max_grid_dims"):
            if data[name] is not None:
                data[name] = list(data[name])
        return {"index": self.index, "name": self.name, "span": self.span.to_json(), **data,
                "properties": [{"key": k, "value": v, "line": self.property_lines[k]}
                               for k, v in self.properties.items()]}


_DEVICE_TYPED = tuple(name for name in GpuDevice.__dataclass_fields__
                      if name not in ("index", "name", "span", "properties", "property_lines"))


@dataclass(frozen=True, slots=True)
class PeerAccess:
    """A ``> Peer access from A -> B : Yes`` line (later SDKs print these;
    the archived CUDA 4.2 run has none)."""

    source: str
    target: str
    possible: bool
    span: SourceSpan

    def to_json(self) -> dict:
        return {"source": self.source, "target": self.target, "possible": self.possible,
                "span": self.span.to_json()}


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """The whole `deviceQuery` output. `unparsed` keeps, verbatim with their
    line numbers, the lines no rule here understood."""

    path: str
    host_path: str | None
    banner: str | None
    device_count: int | None
    driver_version: str | None
    runtime_version: str | None
    devices: tuple[GpuDevice, ...]
    peer_access: tuple[PeerAccess, ...]
    result: str | None
    log_record: SdkLogRecord | None
    unparsed: tuple[tuple[int, str], ...]
    findings: tuple[Finding, ...]

    def to_json(self) -> dict:
        return {
            "path": self.path, "host_path": self.host_path, "banner": self.banner,
            "device_count": self.device_count, "driver_version": self.driver_version,
            "runtime_version": self.runtime_version,
            "devices": [d.to_json() for d in self.devices],
            "peer_access": [p.to_json() for p in self.peer_access],
            "result": self.result,
            "log_record": self.log_record.to_json() if self.log_record else None,
            "unparsed": [{"line": n, "text": t} for n, t in self.unparsed],
            "findings": [f.to_json() for f in self.findings],
        }


_STARTING_RE = re.compile(r"^(?P<path>\S.*?)\s+Starting\.\.\.\s*$")
_FOUND_RE = re.compile(r"^Found (\d+) CUDA Capable device\(s\)$")
_DEVICE_RE = re.compile(r'^Device (\d+): "(.*)"$')
_PEER_RE = re.compile(r"^>?\s*Peer access from (?P<a>.+?) -> (?P<b>.+?)\s*:\s*(?P<yes>Yes|No)$")
_RESULT_RE = re.compile(r"^(?:Result\s*=\s*(\w+)|(PASSED|FAILED|WAIVED))$")
# "Key:   value" or "Key      value" (deviceQuery aligns values at a column;
# some keys have no colon, e.g. "Max Texture Dimension Size (x,y,z)").
_PROPERTY_RE = re.compile(r"^(?P<key>\S.*?)(?::(?=\s|$)\s*|\s{2,})(?P<value>.*)$")
_CORES_KEY_RE = re.compile(r"^\(\s*(\d+)\)\s*Multiprocessors\s*x\s*\(\s*(\d+)\)\s*CUDA Cores/MP$")

# Typed field -> (line key, regex whose groups give the value).
_INT_PROPERTIES = {
    "gpu_clock_mhz": ("GPU Clock rate", r"(\d+) MHz(?: \([\d.]+ GHz\))?"),
    "memory_clock_mhz": ("Memory Clock rate", r"(\d+) MHz"),
    "memory_bus_bits": ("Memory Bus Width", r"(\d+)-bit"),
    "l2_cache_bytes": ("L2 Cache Size", r"(\d+) bytes"),
    "constant_memory_bytes": ("Total amount of constant memory", r"(\d+) bytes"),
    "shared_memory_per_block": ("Total amount of shared memory per block", r"(\d+) bytes"),
    "registers_per_block": ("Total number of registers available per block", r"(\d+)"),
    "warp_size": ("Warp size", r"(\d+)"),
    "max_threads_per_multiprocessor": ("Maximum number of threads per multiprocessor", r"(\d+)"),
    "max_threads_per_block": ("Maximum number of threads per block", r"(\d+)"),
    "global_memory_bytes": ("Total amount of global memory", r"\d+ MBytes \((\d+) bytes\)"),
}


class _DeviceBuilder:
    def __init__(self, index: int, name: str, span: SourceSpan):
        self.index, self.name, self.span = index, name, span
        self.properties: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self.last_key: str | None = None

    def build(self, path: str, findings: list[Finding]) -> GpuDevice:
        props = self.properties

        def match(field_name: str, key: str, pattern: str) -> re.Match[str] | None:
            if key not in props:
                return None
            found = re.fullmatch(pattern, props[key], re.IGNORECASE | re.ASCII)
            if found is None:
                findings.append(Finding(SourceSpan(path, self.lines[key]), "warning", "machines.bad-value",
                                        f"device {self.index}: cannot read {field_name} from {props[key]!r}"))
            return found

        typed: dict[str, object] = {}
        for name, (key, pattern) in _INT_PROPERTIES.items():
            found = match(name, key, pattern)
            typed[name] = int(found.group(1)) if found else None
        versions = match("driver/runtime version", "CUDA Driver Version / Runtime Version", r"(\S+)\s*/\s*(\S+)")
        capability = match("compute capability", "CUDA Capability Major/Minor version number", r"(\d+\.\d+)")
        pci = match("PCI ids", "Device PCI Bus ID / PCI location ID", r"(\d+)\s*/\s*(\d+)")
        for name, key in (("max_block_dims", "Maximum sizes of each dimension of a block"),
                          ("max_grid_dims", "Maximum sizes of each dimension of a grid")):
            found = match(name, key, r"(\d+) x (\d+) x (\d+)")
            typed[name] = tuple(int(g) for g in found.groups()) if found else None
        for name, key in (("ecc_enabled", "Device has ECC support enabled"),
                          ("unified_addressing", "Device supports Unified Addressing (UVA)")):
            found = match(name, key, r"(Yes|No)")
            typed[name] = found.group(1).lower() == "yes" if found else None

        mps = per_mp = cores = None
        for key in props:
            key_match = _CORES_KEY_RE.match(key)
            if key_match:
                mps, per_mp = int(key_match.group(1)), int(key_match.group(2))
                found = match("cuda_cores", key, r"(\d+) CUDA Cores")
                cores = int(found.group(1)) if found else None
                if cores is not None and cores != mps * per_mp:
                    findings.append(Finding(SourceSpan(path, self.lines[key]), "warning", "machines.core-count",
                                            f"device {self.index}: {cores} CUDA cores is not {mps} x {per_mp}"))
        mode = props.get("Compute Mode")
        if mode is not None:
            mode = mode.strip().removeprefix("<").removesuffix(">").strip() or None
        return GpuDevice(
            index=self.index, name=self.name, span=self.span,
            driver_version=versions.group(1) if versions else None,
            runtime_version=versions.group(2) if versions else None,
            compute_capability=capability.group(1) if capability else None,
            multiprocessors=mps, cores_per_multiprocessor=per_mp, cuda_cores=cores,
            pci_bus_id=int(pci.group(1)) if pci else None,
            pci_location_id=int(pci.group(2)) if pci else None,
            compute_mode=mode, properties=dict(props), property_lines=dict(self.lines), **typed)


def parse_device_query(text: str, path: str = DEVICE_QUERY_FILE) -> DeviceQuery:
    """Read deviceQuery output. Lines not understood are kept in `unparsed`;
    an ArchiveError only when nothing at all looks like deviceQuery output."""
    host_path = banner = result = None
    device_count: int | None = None
    devices: list[GpuDevice] = []
    peers: list[PeerAccess] = []
    unparsed: list[tuple[int, str]] = []
    findings: list[Finding] = []
    log_record: SdkLogRecord | None = None
    current: _DeviceBuilder | None = None
    recognised = False

    def close_device() -> None:
        nonlocal current
        if current is not None:
            devices.append(current.build(path, findings))
            current = None

    for number, (body, _) in enumerate(split_lines(text), start=1):
        stripped = body.strip()
        if not stripped:
            continue
        span = SourceSpan(path, number)
        indented = body[:1].isspace()
        if current is not None and indented:
            if stripped.startswith("<") and current.last_key is not None:
                # "Compute Mode:" continues on the next line as "< Default (...) >"
                key = current.last_key
                current.properties[key] = (current.properties[key] + " " + stripped).strip()
                continue
            prop = _PROPERTY_RE.match(stripped)
            if prop and prop.group("key") not in current.properties:
                key = prop.group("key")
                current.properties[key] = prop.group("value").strip()
                current.lines[key] = number
                current.last_key = key
                continue
            unparsed.append((number, body))
            continue
        if (found := _DEVICE_RE.match(stripped)) and not indented:
            close_device()
            current = _DeviceBuilder(int(found.group(1)), found.group(2), span)
            recognised = True
            continue
        close_device()
        if host_path is None and (found := _STARTING_RE.match(stripped)):
            host_path, recognised = found.group("path"), True
        elif banner is None and stripped.startswith("CUDA Device Query"):
            banner, recognised = stripped, True
        elif (found := _FOUND_RE.match(stripped)) and device_count is None:
            device_count, recognised = int(found.group(1)), True
        elif found := _PEER_RE.match(stripped):
            peers.append(PeerAccess(found.group("a"), found.group("b"), found.group("yes") == "Yes", span))
        elif (found := _RESULT_RE.match(stripped)) and result is None:
            result = found.group(1) or found.group(2)
        elif stripped.startswith("deviceQuery,") and log_record is None:
            log_record, recognised = _log_record(stripped, span), True
        else:
            unparsed.append((number, body))
    close_device()
    if not recognised:
        raise ArchiveError(SourceSpan(path, 1), "not deviceQuery output: no 'Starting...', 'Found N CUDA Capable "
                           "device(s)', 'Device N: \"name\"' or summary line", "machines.not-device-query")

    if device_count is not None and device_count != len(devices):
        findings.append(Finding(SourceSpan(path, 1), "warning", "machines.device-count",
                                f"'Found {device_count} CUDA Capable device(s)' but {len(devices)} device blocks"))
    for position, device in enumerate(devices):
        if device.index != position:
            findings.append(Finding(device.span, "warning", "machines.device-order",
                                    f"device block {position} is numbered {device.index}"))
    if log_record is not None:
        if log_record.num_devs is not None and device_count is not None and log_record.num_devs != device_count:
            findings.append(Finding(log_record.span, "warning", "machines.device-count",
                                    f"summary line says NumDevs = {log_record.num_devs}, "
                                    f"the query found {device_count}"))
        if log_record.num_devs is not None and len(log_record.devices) < log_record.num_devs:
            findings.append(Finding(log_record.span, "info", "machines.summary-devices",
                                    f"summary line names {len(log_record.devices)} of its "
                                    f"{log_record.num_devs} devices"))
    first = devices[0] if devices else None
    driver = log_record.driver_version if log_record and log_record.driver_version else (
        first.driver_version if first else None)
    runtime = log_record.runtime_version if log_record and log_record.runtime_version else (
        first.runtime_version if first else None)
    return DeviceQuery(path, host_path, banner, device_count, driver, runtime, tuple(devices), tuple(peers),
                       result, log_record, tuple(unparsed), tuple(findings))


# --------------------------------------------------------------------------
# Both files
# --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Machines:
    """The release's machine records; None where a file is absent."""

    device_query: DeviceQuery | None
    sdk_log: tuple[SdkLogRecord, ...] | None

    def to_json(self) -> dict:
        return {"device_query": self.device_query.to_json() if self.device_query else None,
                "sdk_log": [r.to_json() for r in self.sdk_log] if self.sdk_log is not None else None}


def _read(path: Path, display: str) -> str | None:
    if not path.is_file():
        return None
    try:
        return read_text(path)
    except OSError as error:
        raise ArchiveError(SourceSpan(display, 0), f"cannot read file: {error.strerror}", "io.read") from None


def load_machines(root: Path | str) -> Machines:
    """Read `deviceQuery.txt` and `SdkMasterLog.csv` at the release root."""
    root = Path(root)
    query_text = _read(root / DEVICE_QUERY_FILE, DEVICE_QUERY_FILE)
    log_text = _read(root / SDK_LOG_FILE, SDK_LOG_FILE)
    return Machines(
        device_query=parse_device_query(query_text, DEVICE_QUERY_FILE) if query_text is not None else None,
        sdk_log=parse_sdk_master_log(log_text, SDK_LOG_FILE) if log_text is not None else None,
    )
