"""webapp/charts.py: SVG structure, log axis with zeros, CSV/JSON, escaping, determinism."""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import pytest

from webapp.charts import Chart, Point, Series, chart_csv, chart_json, format_number, linear_ticks, render_svg

NS = "{http://www.w3.org/2000/svg}"


def _markers(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [el for el in root.iter() if el.get("class") == "marker"]


def _chart(*series: Series, y_scale: str = "linear", notes=()) -> Chart:
    return Chart("t-1", "Test <chart> & co", "epoch", "rate", tuple(series), y_scale, notes=tuple(notes))


LR = Series("conv1a, conv1b", (Point(0, 0.01), Point(26, 0.001, "epoch 26: set epsw", "/files/x.cfg#L3"),
                                Point(72, 0.0, "epoch 72: set epsw to 0"), Point(106, 0.0)), "step", "g")


def test_markers_equal_points_and_titles():
    many = tuple(Series(f"s{i}", tuple(Point(x, x * i + 1) for x in range(i + 1)), ("line", "step", "points")[i % 3])
                 for i in range(11))
    svg = render_svg(_chart(*many))
    assert len(_markers(svg)) == sum(len(s.points) for s in many)
    root = ET.fromstring(svg)
    titles = [g.find(f"{NS}title").text for g in root.iter(f"{NS}g") if g.get("class") == "point"]
    assert titles[0] == "s0 — x: 0, y: 1"
    # Nine or more series: palette cycles, but (colour, dash, marker) stay distinct.
    legend = [el for el in root.iter() if el.get("class") == "legend-label"]
    assert len(legend) == 11


def test_log_axis_with_zeros_draws_zero_row_and_links():
    svg = render_svg(_chart(LR, y_scale="log"))
    root = ET.fromstring(svg)
    assert len(_markers(svg)) == 4
    zero_rows = [el for el in root.iter() if el.get("class") == "zero-row"]
    assert len(zero_rows) == 1
    labels = [el.text for el in root.iter(f"{NS}text") if "tick-label" in (el.get("class") or "")]
    assert "0.001" in labels and "0.01" in labels and "0" in labels
    assert any("“0” row" in (el.text or "") for el in root.iter(f"{NS}text"))
    links = [el for el in root.iter(f"{NS}a")]
    assert [a.get("href") for a in links] == ["/files/x.cfg#L3"]
    mapped = render_svg(_chart(LR, y_scale="log"), href=lambda p: "../" + p.lstrip("/"))
    assert 'href="../files/x.cfg#L3"' in mapped


def test_log_decade_labels_below_0001_use_exponent_form():
    s = Series("a", (Point(0, 1e-5), Point(1, 1e-2)), "line")
    root = ET.fromstring(render_svg(_chart(s, y_scale="log")))
    labels = [el.text for el in root.iter(f"{NS}text") if el.get("class") == "tick-label"]
    assert labels[-4:] == ["1e-5", "1e-4", "0.001", "0.01"]


def test_y_scale_override_and_all_zero_log():
    svg = render_svg(_chart(Series("z", (Point(0, 0), Point(5, 0)), "step")), y_scale="log")
    assert len(_markers(svg)) == 2


@pytest.mark.parametrize("points", [(Point(3, 0.37),), (Point(0, 5), Point(1, 5), Point(2, 5))])
def test_single_point_or_flat_values_get_sensible_axes(points):
    svg = render_svg(_chart(Series("one", points, "points")))
    root = ET.fromstring(svg)
    assert len(_markers(svg)) == len(points)
    ys = [float(el.get("cy")) for el in root.iter(f"{NS}circle") if el.get("class") == "marker"]
    assert all(30 < y < 276 for y in ys)  # inside the plot, not on its frame


def test_empty_chart_says_no_data():
    for chart in (_chart(), _chart(Series("empty", ()))):
        root = ET.fromstring(render_svg(chart))
        assert [el.text for el in root.iter(f"{NS}text") if el.get("class") == "no-data"] == ["no data"]


def test_text_is_escaped_and_output_deterministic():
    evil = Series('<script>"x"</script>&', (Point(1, 2, "label <b>&", "/a?b=1&c=<2>"),), "points")
    svg = render_svg(_chart(evil, notes=["note <i>"]))
    ET.fromstring(svg)
    assert "<script>" not in svg and "<b>" not in svg and "<i>" not in svg
    assert svg == render_svg(_chart(evil, notes=["note <i>"]))


def test_csv_round_trips_and_json_shape():
    tricky = Series('a,"b"', (Point(1.5, 2.0, 'line, with "quotes"\nand newline'),), "points")
    chart = _chart(LR, tricky)
    rows = list(csv.reader(io.StringIO(chart_csv(chart))))
    assert rows[0] == ["series", "x", "y", "label"]
    assert len(rows) == 1 + 5
    assert rows[-1] == ['a,"b"', "1.5", "2.0", 'line, with "quotes"\nand newline']
    assert [float(r[2]) for r in rows[1:5]] == [p.y for p in LR.points]
    data = chart_json(chart)
    assert set(data) == {"id", "title", "x_label", "y_label", "y_scale", "series", "notes"}
    assert data["series"][0]["group"] == "g" and data["series"][0]["points"][1]["label"] == "epoch 26: set epsw"


def test_ticks_and_numbers():
    assert linear_ticks(0, 106) == [0, 20, 40, 60, 80, 100, 120]
    assert linear_ticks(5, 5)[0] < 5 < linear_ticks(5, 5)[-1]
    assert [format_number(v) for v in (26.0, 0.001, 1e-05, 1.634692)] == ["26", "0.001", "1e-5", "1.63469"]
