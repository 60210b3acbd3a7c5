"""The SpEL subset against the rules of kork's ExpressionTransform / MapPropertyAccessor and
Spring's operators (each rule is cited in sidecar/spinnaker/spel.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.spinnaker.spel import Evaluator

ROOT = {
    "execution": {"id": "01E", "name": "deploy"},
    "parameterValues": {"upstream": "orders", "n": 7},
    "templateVariables": {"pct": 10, "half": 2.5},
}


def render(value, root=ROOT):
    evaluator = Evaluator(root)
    return evaluator.render(value), evaluator.failures


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("${7/2}", 3),
        ("${-7/2}", -3),
        ("${7/-2}", -3),
        ("${7.0/2}", 3.5),
        ("${7/2.0}", 3.5),
        ("${parameterValues['n'] / 2}", 3),
        ("${100 - 2 * templateVariables.pct}", 80),
        ("${100 - 2 * templateVariables.half}", 95.0),
    ],
)
def test_integers_divide_as_integers(expression, value) -> None:
    result, failures = render(expression)
    assert result == value and type(result) is type(value) and failures == []


def test_integer_division_by_zero_is_a_failure_that_keeps_the_raw_text() -> None:
    assert render("${1/0}") == ("${1/0}", ["${1/0}: / by zero"])


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("${'x' + 1}", "x1"),
        ("${1 + 'x'}", "1x"),
        ("${'x' + 2.5}", "x2.5"),
        ("${'x' + true}", "xtrue"),
        ("${'ab' * 2}", "abab"),
    ],
)
def test_a_string_operand_concatenates(expression, value) -> None:
    assert render(expression) == (value, [])


@pytest.mark.parametrize("expression", ["${2 * 'ab'}", "${true + 1}", "${'a' - 'b'}"])
def test_operators_spel_refuses_are_failures(expression) -> None:
    result, failures = render(expression)
    assert result == expression and len(failures) == 1


def test_a_null_part_stays_literal_while_the_rest_is_replaced() -> None:
    text = "upstream ${parameterValues['upstream']} by ${trigger.user} in ${execution.id}"
    result, failures = render(text, {**ROOT, "trigger": {}})
    assert result == "upstream orders by ${trigger.user} in 01E"
    assert failures == ["${trigger.user}: not found"]


def test_a_lone_null_expression_keeps_the_raw_string() -> None:
    assert render("${execution.missing}") == (
        "${execution.missing}",
        ["${execution.missing}: not found"],
    )


def test_a_throwing_part_leaves_the_whole_string_raw() -> None:
    text = "app ${execution.name} by ${trigger.user}"  # no trigger: null.user throws
    result, failures = render(text)
    assert result == text and len(failures) == 1


@given(st.integers(-10_000, 10_000), st.integers(-100, 100).filter(bool))
def test_integer_division_truncates_towards_zero_like_java(a: int, b: int) -> None:
    result, _ = render(f"${{{a}/{b}}}" if b > 0 else f"${{{a}/({b})}}")
    assert result == int(a / b)


LISTS = {"templateVariables": {"routes": ["refunds", "payouts"], "esp": {"service": "orders"}}}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("${templateVariables.routes.size() > 1 ? templateVariables.routes[1] : ''}", "payouts"),
        ("${templateVariables.routes.size() > 2 ? templateVariables.routes[2] : ''}", ""),
        ("${templateVariables.routes.size() <= 5}", True),
        ("${!templateVariables.esp.isEmpty() && templateVariables.missing == null}", True),
        ("${false && templateVariables.routes[9] == 'x'}", False),  # never evaluated
        ("${true || templateVariables.routes[9] == 'x'}", True),
        ("${1 == 1.0}", True),
        ("${'1' == 1}", False),
        ("${#toJson(templateVariables.missing)}", "null"),
        ("${#toJson(templateVariables.esp)}", '{"service":"orders"}'),
        ("${#readJson('{\"a\": [1]}')}", {"a": [1]}),
        ("${'abc'.substring(1)}", "bc"),
        ("a && ${templateVariables.routes.size() > 0}", "a && true"),
    ],
)
def test_conditionals_comparisons_and_json_helpers(expression, value) -> None:
    result, failures = render(expression, LISTS)
    assert result == value and failures == []


def test_an_index_past_the_end_fails_and_names_the_variable() -> None:
    evaluator = Evaluator(LISTS)
    assert evaluator.render("${templateVariables.routes[2]}") == "${templateVariables.routes[2]}"
    assert evaluator.failed_keys == ["templateVariables.routes[2]"]


def test_braces_inside_quotes_do_not_end_the_expression() -> None:
    """Spring's skipToCorrectEndSuffix skips quoted literals and nested brackets."""
    text = "${#readJson('{\"route\": ' + #toJson(templateVariables.routes[0]) + '}')}"
    assert render(text, LISTS) == ({"route": "refunds"}, [])
