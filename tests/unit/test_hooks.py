"""Hooks: commands with the rollout's facts as DOCKROLL_* variables, HTTP POSTs with a JSON body."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from dockroll.hooks import Hook, HookPoint, Hooks, run_hook

CONTEXT = {
    "service": "web",
    "environment": "prod",
    "version": "v1.2.0",
    "digest": "sha256:" + "ab" * 32,
    "target_url": "http://172.18.0.5:5000",
}


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# -- commands ------------------------------------------------------------------------------


def test_a_command_gets_every_fact_as_a_dockroll_variable(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    hook = Hook(
        command=_python(
            f"""
            import json, os
            facts = {{k: v for k, v in os.environ.items() if k.startswith("DOCKROLL_")}}
            open({str(out)!r}, "w").write(json.dumps(facts))
            """
        )
    )

    result = run_hook(hook, HookPoint.PRE_TRAFFIC, CONTEXT)

    assert result.ok
    assert result.detail == "exit 0"
    facts = json.loads(out.read_text())
    assert facts["DOCKROLL_SERVICE"] == "web"
    assert facts["DOCKROLL_ENVIRONMENT"] == "prod"
    assert facts["DOCKROLL_VERSION"] == "v1.2.0"
    assert facts["DOCKROLL_DIGEST"] == CONTEXT["digest"]
    assert facts["DOCKROLL_TARGET_URL"] == "http://172.18.0.5:5000"
    assert facts["DOCKROLL_HOOK"] == "pre-traffic"


def test_a_command_keeps_the_callers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TEST_TOKEN", "s3cret")
    hook = Hook(
        command=_python("import os, sys; sys.exit(os.environ['HOOK_TEST_TOKEN'] != 's3cret')")
    )
    assert run_hook(hook, HookPoint.PRE_ROLLOUT, CONTEXT).ok


def test_a_failing_command_reports_its_exit_code_and_last_output() -> None:
    hook = Hook(
        name="freeze", command=["sh", "-c", "echo 'change freeze until Monday' >&2; exit 7"]
    )

    result = run_hook(hook, HookPoint.PRE_ROLLOUT, CONTEXT)

    assert not result.ok
    assert result.hook == "freeze"
    assert result.point is HookPoint.PRE_ROLLOUT
    assert result.detail == "exit 7: change freeze until Monday"
    assert result.to_json()["ok"] is False
    assert result.to_json()["point"] == "pre-rollout"


def test_a_command_output_is_bounded() -> None:
    hook = Hook(command=_python("print('x' * 10000); raise SystemExit(1)"))
    result = run_hook(hook, HookPoint.PRE_ROLLOUT, CONTEXT)
    assert not result.ok
    assert len(result.detail) <= len("exit 1: ") + 2000


def test_a_command_that_runs_too_long_is_stopped_and_fails() -> None:
    hook = Hook(command=["sleep", "5"], timeout="300ms")

    result = run_hook(hook, HookPoint.PRE_TRAFFIC, CONTEXT)

    assert not result.ok
    assert result.detail == "timed out after 0.3s"
    assert result.seconds < 3


def test_a_command_that_cannot_start_fails_with_the_reason(tmp_path: Path) -> None:
    hook = Hook(command=[str(tmp_path / "missing-script")])
    result = run_hook(hook, HookPoint.ROLLBACK, CONTEXT)
    assert not result.ok
    assert result.detail.startswith("could not run:")


# -- HTTP ----------------------------------------------------------------------------------


def test_an_http_hook_posts_the_facts_as_json() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    hook = Hook(
        http="https://hooks.example.test/deployed",
        headers={"Authorization": "Bearer t0ken"},
    )
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        result = run_hook(hook, HookPoint.POST_ROLLOUT, CONTEXT, http=client)

    assert result.ok
    assert result.detail == "HTTP 204"
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://hooks.example.test/deployed"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert json.loads(request.content) == {**CONTEXT, "hook": "post-rollout"}


def test_an_http_hook_may_use_another_method() -> None:
    methods: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        return httpx.Response(200)

    hook = Hook(http="http://127.0.0.1:9/hook", method="PUT")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert run_hook(hook, HookPoint.ROLLBACK, CONTEXT, http=client).ok
    assert methods == ["PUT"]


@pytest.mark.parametrize("status", [400, 403, 500, 503])
def test_an_http_hook_fails_on_a_non_2xx_status_with_the_body(status: int) -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="deploys are frozen\n")

    hook = Hook(http="http://127.0.0.1:9/gate")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        result = run_hook(hook, HookPoint.PRE_ROLLOUT, CONTEXT, http=client)

    assert not result.ok
    assert result.detail == f"HTTP {status}: deploys are frozen"


def test_an_unreachable_http_hook_fails_without_raising() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    hook = Hook(http="http://127.0.0.1:9/gate")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        result = run_hook(hook, HookPoint.PRE_TRAFFIC, CONTEXT, http=client)

    assert not result.ok
    assert result.detail == "ConnectError: connection refused"


def test_an_http_hook_timeout_fails_the_hook() -> None:
    timeouts: list[object] = []

    def answer(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        raise httpx.ReadTimeout("timed out", request=request)

    hook = Hook(http="http://127.0.0.1:9/slow", timeout="2s")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        result = run_hook(hook, HookPoint.POST_ROLLOUT, CONTEXT, http=client)

    assert not result.ok
    assert result.detail.startswith("ReadTimeout")
    assert timeouts == [{"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}]


# -- the model -----------------------------------------------------------------------------


def test_points_before_traffic_block_and_the_others_only_report() -> None:
    assert HookPoint.PRE_ROLLOUT.blocking
    assert HookPoint.PRE_TRAFFIC.blocking
    assert not HookPoint.POST_ROLLOUT.blocking
    assert not HookPoint.ROLLBACK.blocking


def test_hooks_are_read_by_point_from_their_yaml_names() -> None:
    hooks = Hooks.model_validate(
        {
            "pre-rollout": [{"command": ["true"]}],
            "pre-traffic": [{"http": "http://127.0.0.1:9/a"}, {"command": ["true"]}],
            "post-rollout": [{"name": "notify", "http": "https://chat.example.test/x"}],
            "rollback": [{"command": ["page-oncall"], "timeout": "5s"}],
        }
    )
    assert len(hooks.at(HookPoint.PRE_ROLLOUT)) == 1
    assert len(hooks.at(HookPoint.PRE_TRAFFIC)) == 2
    assert hooks.at(HookPoint.POST_ROLLOUT)[0].label == "notify"
    assert hooks.at(HookPoint.ROLLBACK)[0].timeout == 5.0
    assert hooks.at(HookPoint.ROLLBACK)[0].label == "page-oncall"
    assert hooks.at(HookPoint.PRE_TRAFFIC)[0].label == "POST http://127.0.0.1:9/a"
    assert Hooks().at(HookPoint.ROLLBACK) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "exactly one of 'command' (a list) or 'http' (a URL)"),
        (
            {"command": ["true"], "http": "http://127.0.0.1:9/"},
            "exactly one of 'command' (a list) or 'http' (a URL)",
        ),
        ({"command": []}, "a hook's command cannot be empty"),
        ({"http": "ftp://example.test/x"}, "is not an http(s) URL"),
        ({"http": "127.0.0.1:9/hook"}, "is not an http(s) URL"),
        ({"command": ["true"], "timeout": "soon"}, "timeout"),
        ({"command": ["true"], "retries": 3}, "retries"),
        ({"command": "echo hi"}, "command"),
    ],
)
def test_invalid_hooks_are_refused_with_the_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Hook.model_validate(data)
    assert message in str(raised.value)


def test_an_unknown_point_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        Hooks.model_validate({"post-traffic": [{"command": ["true"]}]})
    assert "post-traffic" in str(raised.value)
