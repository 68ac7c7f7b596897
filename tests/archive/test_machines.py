"""archive.machines against the release's deviceQuery.txt and SdkMasterLog.csv."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from archive.machines import load_machines, parse_device_query, parse_sdk_master_log
from archive.source import ArchiveError


@pytest.fixture(scope="module")
def machines(archive_root: Path):
    return load_machines(archive_root)


def test_device_query_header(machines):
    query = machines.device_query
    assert query.path == "deviceQuery.txt"
    assert query.host_path == "/u/kriz/NVIDIA_GPU_Computing_SDK/C/bin/linux/release/deviceQuery"
    assert query.banner == "CUDA Device Query (Runtime API) version (CUDART static linking)"
    assert (query.device_count, query.driver_version, query.runtime_version) == (4, "4.2", "4.2")
    assert query.peer_access == () and query.result is None  # the CUDA 4.2 sample printed neither
    assert query.unparsed == ()


def test_four_tesla_s2050(machines):
    devices = machines.device_query.devices
    assert [d.index for d in devices] == [0, 1, 2, 3]
    assert [d.span.line for d in devices] == [7, 41, 75, 109]
    assert [d.pci_bus_id for d in devices] == [7, 8, 16, 17]
    for d in devices:
        assert d.name == "Tesla S2050"
        assert (d.compute_capability, d.driver_version, d.runtime_version) == ("2.0", "4.2", "4.2")
        assert d.global_memory_bytes == 3220897792  # printed as "3072 MBytes"
        assert (d.multiprocessors, d.cores_per_multiprocessor, d.cuda_cores) == (14, 32, 448)
        assert (d.gpu_clock_mhz, d.memory_clock_mhz, d.memory_bus_bits) == (1147, 1546, 384)
        assert (d.l2_cache_bytes, d.constant_memory_bytes, d.shared_memory_per_block) == (786432, 65536, 49152)
        assert (d.registers_per_block, d.warp_size) == (32768, 32)
        assert (d.max_threads_per_multiprocessor, d.max_threads_per_block) == (1536, 1024)
        assert (d.max_block_dims, d.max_grid_dims) == ((1024, 1024, 64), (65535, 65535, 65535))
        assert (d.ecc_enabled, d.unified_addressing, d.pci_location_id) == (False, True, 0)
        assert d.compute_mode.startswith("Default (multiple host threads")
        assert len(d.properties) == 31  # every "Key: value" line of the block, none lost
        assert d.properties["Memory Clock rate"] == "1546 Mhz"
        assert d.properties["Max Texture Dimension Size (x,y,z)"] == "1D=(65536), 2D=(65536,65535), 3D=(2048,2048,2048)"
    assert devices[0].property_lines["Warp size"] == 21


def test_summary_line_names_two_of_four(machines):
    record = machines.device_query.log_record
    assert record.line == 143 and record.tool == "deviceQuery"
    assert (record.driver, record.driver_version, record.runtime_version, record.num_devs) == ("CUDART", "4.2", "4.2", 4)
    assert record.devices == ("Tesla S2050", "Tesla S2050")
    assert [f.rule for f in machines.device_query.findings] == ["machines.summary-devices"]


def test_sdk_master_log(machines):
    log = machines.sdk_log
    assert len(log) == 2 and [r.line for r in log] == [1, 2]
    assert log[0].text == log[1].text == machines.device_query.log_record.text
    assert log[0].fields["Device"] == ("Tesla S2050", "Tesla S2050")
    assert log[0].fields["NumDevs"] == "4" and log[0].extra == ()


def test_json(machines):
    data = json.loads(json.dumps(machines.to_json()))
    assert data["device_query"]["devices"][3]["cuda_cores"] == 448
    assert data["sdk_log"][1]["devices"] == ["Tesla S2050", "Tesla S2050"]


def test_absent_files(tmp_path: Path):
    machines = load_machines(tmp_path)
    assert machines.device_query is None and machines.sdk_log is None


def test_malformed_device_query():
    text = ('x Starting...\nFound 2 CUDA Capable device(s)\nDevice 0: "G"\n  Warp size:   lots\n'
            '  (4) Multiprocessors x ( 8) CUDA Cores/MP:    33 CUDA Cores\n  gibberish\nstray line\n')
    query = parse_device_query(text, "dq.txt")
    device = query.devices[0]
    assert device.warp_size is None and device.properties["Warp size"] == "lots"
    assert device.cuda_cores == 33 and query.unparsed == ((6, "  gibberish"), (7, "stray line"))
    assert sorted(f.rule for f in query.findings) == ["machines.bad-value", "machines.core-count",
                                                      "machines.device-count"]
    assert [str(f.span) for f in query.findings if f.rule == "machines.bad-value"] == ["dq.txt:4"]


def test_not_device_query_output():
    with pytest.raises(ArchiveError, match=r"^dq\.txt:1: "):
        parse_device_query("hello\nworld\n", "dq.txt")


def test_malformed_sdk_log():
    (record,) = parse_sdk_master_log("\nfoo, a = 1, junk, NumDevs = many\n\n", "log.csv")
    assert record.line == 2 and record.tool == "foo" and record.extra == ("junk",)
    assert record.num_devs is None and record.fields == {"a": "1", "NumDevs": "many"}


_PIECES = st.sampled_from(list(' :()<>/"=,x\n0123') + ["Device 0: \"G\"", "  Warp size:", "Found ",
                                                        "deviceQuery,", " Starting...", "NumDevs = "])


@given(st.lists(_PIECES, max_size=40).map("".join))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_raises_only_archive_error(text):
    for record in parse_sdk_master_log(text, "log.csv"):
        record.to_json()
    try:
        parse_device_query(text, "dq.txt").to_json()
    except ArchiveError:
        pass
