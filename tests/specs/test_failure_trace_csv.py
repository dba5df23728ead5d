"""The failure-trace CSV reader (sim/specs/failure_trace.py) on arbitrary text: a trace or problems naming the
field, never an exception; a trace it accepts is one the spec accepts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.specs._schema import build
from sim.specs.failure_trace import COLUMNS, FailureTraceSpec, _parse

CELLS = st.one_of(st.sampled_from(["1", "0", "-1", "2.5", "nan", "inf", "1e3", "gpu", "software", "node", "x", "",
                                   '"a,b"', '"unterminated']), st.text(max_size=6))
LINES = st.lists(CELLS, min_size=0, max_size=6).map(",".join)
HEADERS = st.one_of(st.just(",".join(COLUMNS)), st.permutations(COLUMNS).map(",".join), LINES)


@settings(max_examples=200, deadline=None)
@given(header=HEADERS, rows=st.lists(LINES, max_size=8), comment=st.booleans())
def test_any_text_gives_a_trace_or_issues_naming_the_field(header, rows, comment):
    text = ("# provenance\n" if comment else "") + "\n".join([header, *rows])
    columns, issues = _parse(text, "t.csv", "failures.trace")
    assert (columns is None) == bool(issues)
    assert all(i.path == "failures.trace" and i.message.startswith("t.csv") for i in issues)
    if columns is not None:
        spec = build(FailureTraceSpec, columns)
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert len(spec.time_hours) == len(lines) - 1  # every row after the header
