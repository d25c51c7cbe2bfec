"""Property tests (hypothesis) for issue 14: any mutated degradation plan and any config override either works
or is refused with a one-line `ConfigError`/`UserError`, never another exception. Bounded and derandomized, so a
CI run is deterministic and takes seconds."""

from __future__ import annotations

import copy
import json

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realbasicvsr.degrade.plan import plan_from_json
from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.train.config import load_config, stage1
from test_hardening_limits import resize_down_plan

BOUNDED = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 30), st.floats(allow_nan=True), st.text(max_size=3)), max_size=8),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3), max_size=3),
)


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path inside a JSON value (dict keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


PLAN = resize_down_plan()
PLAN_PATHS = _paths(PLAN)


@BOUNDED
@given(st.lists(st.tuples(st.sampled_from(PLAN_PATHS), ODD_VALUES), min_size=1, max_size=3))
def test_property_mutated_plans_parse_or_raise_config_error(mutations):
    data = copy.deepcopy(PLAN)
    for path, value in mutations:
        target = data
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a container on the path
    try:
        plan_from_json(json.dumps(data))
    except ConfigError as error:
        assert "\n" not in str(error) and len(str(error)) < 600


CONFIG_KEYS = [
    *sorted(f"{part}.{key}" for part, fields in stage1().to_dict().items() for key in fields if part != "data"),
    "data.num_frames",
    "data.gt_size",
    "data.batch_size",
    "data.workers",
    "data.degradation",
    "data.degradation.blur1.kernel_sizes",
    "data.degradation.jpeg1.quality_range",
    "data.degradation.noise2.prob",
    "data.degradation.usm_weight",
]
OVERRIDE_TEXT = st.one_of(
    st.sampled_from(["nan", ".nan", "inf", "-.inf", "1e999", "-1", "0", "[2,3]", "[]", "{}", "~", "yes", "{a: 1}"]),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="[]{},:-.0123456789abe &*'\"", max_size=16),
)


@BOUNDED
@given(st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), OVERRIDE_TEXT), min_size=1, max_size=3))
def test_property_config_overrides_build_or_raise_user_error(overrides):
    try:
        load_config("tiny", [f"{key}={value}" for key, value in overrides])
    except UserError as error:
        assert "\n" not in str(error).strip() or "could not be parsed" in str(error)
        assert len(str(error)) < 1000
