"""dockroll.yml parsing: the example loads, values convert, every mistake names its field."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from dockroll.config import (
    Config,
    Strategy,
    find_config,
    load_config,
    parse_duration,
)
from dockroll.errors import ConfigError, UsageError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask-app" / "dockroll.yml"

MINIMAL = "service: web\nimage: 127.0.0.1:5000/team/web\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dockroll.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    return str(caught.value)


def test_the_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKROLL_REGISTRY", raising=False)
    config = load_config(EXAMPLE)

    assert config.service == "flask-app"
    assert config.image == "127.0.0.1:5000/dockroll/flask-app"
    assert config.root == EXAMPLE.parent
    assert config.dockerfile_path == EXAMPLE.parent / "Dockerfile"
    assert config.build.base_image_arg == "BASE_IMAGE"
    [secret] = config.build.secrets
    assert (secret.id, secret.required) == ("pip_cert", False)
    assert config.health.interval == 0.5
    assert config.health.start_timeout == 60.0
    assert config.container.stop_grace == 10.0
    assert list(config.environments) == ["dev", "staging", "prod"]
    prod = config.environments["prod"]
    assert prod.strategy is Strategy.CANARY
    assert prod.promote_from == "staging"
    assert prod.min_soak == 600.0
    assert prod.requires_approval


def test_a_minimal_config_gets_the_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))

    assert config.build.dockerfile == Path("Dockerfile")
    assert config.container.port == 5000
    assert config.health.path == "/ready"
    assert config.smoke.version_path == "/version"
    assert config.environments == {}
    assert config.context_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (" 3 s ", 3.0),
        ("7", 7.0),
        (3, 3.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["-1s", -1, -0.5, "soon", "5d", "", True, None, [1]])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_durations_in_the_file_are_converted(tmp_path: Path) -> None:
    config = load_config(
        _write(tmp_path, MINIMAL + "health:\n  interval: 250ms\n  start_timeout: 2m\n")
    )
    assert config.health.interval == 0.25
    assert config.health.start_timeout == 120.0


def test_a_negative_duration_names_the_field(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL + "health:\n  start_timeout: -5\n")
    assert "health.start_timeout" in message
    assert "negative" in message


def test_interpolation_uses_the_environment_or_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        "service: web\n"
        "image: ${REG:-127.0.0.1:5000}/team/web\n"
        "container:\n"
        "  env:\n"
        "    GREETING: hello-${WHO}\n"
        "    LEVEL: ${LEVEL:-info}\n"
    )
    monkeypatch.delenv("REG", raising=False)
    monkeypatch.delenv("LEVEL", raising=False)
    monkeypatch.setenv("WHO", "world")
    config = load_config(_write(tmp_path, text))
    assert config.image == "127.0.0.1:5000/team/web"
    assert config.container.env == {"GREETING": "hello-world", "LEVEL": "info"}

    monkeypatch.setenv("REG", "localhost:5001")
    monkeypatch.setenv("LEVEL", "debug")
    config = load_config(_write(tmp_path, text))
    assert config.image == "localhost:5001/team/web"
    assert config.container.env["LEVEL"] == "debug"


def test_an_empty_variable_takes_the_default_like_compose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REG", "")
    monkeypatch.delenv("UNSET_VARIABLE", raising=False)
    config = load_config(
        _write(
            tmp_path,
            "service: web\nimage: ${REG:-127.0.0.1:5000}/web\n"
            "container:\n  env:\n    X: a${UNSET_VARIABLE}b\n",
        )
    )
    assert config.image == "127.0.0.1:5000/web"
    assert config.container.env["X"] == "ab"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "127.0.0.1:5000"), ("", ""), ("localhost:5001", "localhost:5001")],
)
def test_a_dash_default_applies_only_when_unset_like_compose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    if value is None:
        monkeypatch.delenv("REG", raising=False)
    else:
        monkeypatch.setenv("REG", value)
    text = MINIMAL + "container:\n  env:\n    REGISTRY: ${REG-127.0.0.1:5000}\n"
    config = load_config(_write(tmp_path, text))
    assert config.container.env["REGISTRY"] == expected


@pytest.mark.parametrize(
    ("value", "form", "words"),
    [
        (None, "${IMAGE:?set IMAGE to the repository}", "IMAGE is unset or empty: set IMAGE to"),
        ("", "${IMAGE:?set IMAGE to the repository}", "IMAGE is unset or empty: set IMAGE to"),
        (None, "${IMAGE?set IMAGE}", "IMAGE is unset: set IMAGE"),
        (None, "${IMAGE:?}", "IMAGE is unset or empty: a value is required"),
    ],
)
def test_a_required_variable_that_is_not_set_fails_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, form: str, words: str
) -> None:
    if value is None:
        monkeypatch.delenv("IMAGE", raising=False)
    else:
        monkeypatch.setenv("IMAGE", value)
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, f"service: web\nimage: '{form}'\n"))
    error = caught.value
    assert f"image: {words}" in error.message
    assert "not set" in error.message
    assert error.hint is not None
    assert "set IMAGE" in error.hint


def test_every_missing_required_variable_is_named_with_its_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_URL", raising=False)
    monkeypatch.delenv("TOKEN", raising=False)
    text = (
        MINIMAL + "environments:\n  dev:\n    port: 8081\n"
        "    env: {DATABASE_URL: '${DB_URL:?the database of dev}'}\n"
        "build:\n  args: {TOKEN: '${TOKEN?}'}\n"
    )
    message = _error(tmp_path, text)
    assert "environments.dev.env.DATABASE_URL: DB_URL is unset or empty: the database of dev" in (
        message
    )
    assert "build.args.TOKEN: TOKEN is unset" in message
    assert "set DB_URL, TOKEN" in message


def test_a_required_variable_that_is_set_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE", "127.0.0.1:5000/Team/Web")
    config = load_config(_write(tmp_path, "service: web\nimage: '${IMAGE:?set IMAGE}'\n"))
    assert config.image == "127.0.0.1:5000/team/web"


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ('""', "image: is empty"),
        ("'  '", "image: is empty"),
        ("/team/web", "not a valid repository name component"),
        ("127.0.0.1:5000/team//web", "not a valid repository name component"),
        ("'127.0.0.1:5000/te am'", "not a valid repository name component"),
    ],
)
def test_an_image_that_names_no_repository_is_refused(
    tmp_path: Path, image: str, words: str
) -> None:
    assert words in _error(tmp_path, f"service: web\nimage: {image}\n")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("'dev;rm -rf ~'", "environment name 'dev;rm -rf ~' is not allowed"),
        ("a" * 300, "environment name '" + "a" * 40 + "…' is 300 characters long; use at most 32"),
        ("Dev", "environment name 'Dev' is not allowed"),
        ("../etc", "environment name '../etc' is not allowed"),
        ("'-dev'", "environment name '-dev' is not allowed"),
        ("''", "environment name '' is not allowed"),
    ],
)
def test_environment_names_follow_the_command_line_rule(
    tmp_path: Path, name: str, words: str
) -> None:
    message = _error(tmp_path, MINIMAL + f"environments:\n  {name}: {{port: 8081}}\n")
    assert f"environments: {words}" in message
    config = load_config(_write(tmp_path, MINIMAL + "environments:\n  dev: {port: 8081}\n"))
    with pytest.raises(UsageError) as caught:
        config.environment(yaml.safe_load(name) if name.startswith("'") else name)
    assert words in caught.value.message


def test_service_and_environment_names_must_fit_a_router_server_name(tmp_path: Path) -> None:
    text = "service: " + "s" * 40 + "\nimage: x\nenvironments:\n  production-eu: {port: 1}\n"
    assert "shorten one of them" in _error(tmp_path, text)
    text = "service: " + "s" * 39 + "\nimage: x\nenvironments:\n  production-eu: {port: 1}\n"
    assert list(load_config(_write(tmp_path, text)).environments) == ["production-eu"]


def test_the_image_is_lowercased(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "service: web\nimage: 127.0.0.1:5000/Team/Web\n"))
    assert config.image == "127.0.0.1:5000/team/web"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        pytest.param("image: 127.0.0.1:5000/web\n", "service", "Field required", id="no-service"),
        pytest.param("service: web\n", "image", "Field required", id="no-image"),
        pytest.param(
            MINIMAL + "replicas: 3\n", "replicas", "unknown field", id="unknown-top-level-field"
        ),
        pytest.param(
            MINIMAL + "health:\n  pth: /ready\n", "health.pth", "unknown field", id="typo-nested"
        ),
        pytest.param(
            "service: web\nimage: 127.0.0.1:5000/web:v1\n",
            "image",
            "repository only",
            id="image-with-tag",
        ),
        pytest.param(
            "service: web\nimage: 127.0.0.1:5000/web@sha256:" + "a" * 64 + "\n",
            "image",
            "repository only",
            id="image-with-digest",
        ),
        pytest.param(
            "service: Web App\nimage: 127.0.0.1:5000/web\n", "service", "lowercase", id="bad-name"
        ),
        pytest.param(
            MINIMAL + "environments:\n  staging:\n    port: 8082\n    promote_from: dev\n",
            "promote_from",
            "'dev'",
            id="promote-from-unknown-env",
        ),
        pytest.param(
            MINIMAL + "environments:\n  dev:\n    port: 8081\n  staging:\n    port: 8081\n",
            "environments.dev.port and environments.staging.port",
            "own router port",
            id="duplicate-env-ports",
        ),
        pytest.param(
            MINIMAL + "environments:\n  dev:\n    port: 70000\n",
            "environments.dev.port",
            "65535",
            id="port-out-of-range",
        ),
        pytest.param(
            MINIMAL + "environments:\n  dev:\n    port: 8081\n    strategy: yolo\n",
            "environments.dev.strategy",
            "rolling",
            id="unknown-strategy",
        ),
        pytest.param(
            MINIMAL + "health:\n  path: ready\n", "health.path", "start with '/'", id="rel-path"
        ),
        pytest.param(
            MINIMAL + "build:\n  secrets:\n    - id: x\n",
            "build.secrets.0",
            "exactly one of",
            id="secret-without-source",
        ),
        pytest.param(
            MINIMAL + "build:\n  secrets:\n    - id: x\n      src: a\n      env: B\n",
            "build.secrets.0",
            "exactly one of",
            id="secret-with-two-sources",
        ),
    ],
)
def test_invalid_configs_name_the_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    message = _error(tmp_path, text)
    assert str(tmp_path / "dockroll.yml") in message
    assert field in message
    assert words in message


def test_promote_from_error_lists_the_environments(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        MINIMAL + "environments:\n  dev:\n    port: 1\n  prod:\n    port: 2\n"
        "    promote_from: staging\n",
    )
    assert "environments.prod.promote_from" in message
    assert "dev, prod" in message


@pytest.mark.parametrize(
    ("environments", "words"),
    [
        (
            "  a: {port: 1, promote_from: b}\n  b: {port: 2, promote_from: a}\n",
            "environments a, b promote from each other in a cycle (a from b, b from a)",
        ),
        (
            # d only hangs off the loop; the message names the loop itself.
            "  d: {port: 4, promote_from: a}\n  a: {port: 1, promote_from: c}\n"
            "  b: {port: 2, promote_from: a}\n  c: {port: 3, promote_from: b}\n",
            "environments a, c, b promote from each other in a cycle",
        ),
        ("  a: {port: 1, promote_from: a}\n", "environments.a.promote_from names 'a' itself"),
    ],
)
def test_a_promote_from_cycle_is_refused_when_loading(
    tmp_path: Path, environments: str, words: str
) -> None:
    message = _error(tmp_path, MINIMAL + "environments:\n" + environments)
    assert words in message


def test_promotion_order_follows_promote_from(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            MINIMAL + "environments:\n  prod: {port: 3, promote_from: staging}\n"
            "  dev: {port: 1}\n  staging: {port: 2, promote_from: dev}\n",
        )
    )
    assert config.promotion_order() == ["dev", "staging", "prod"]


def test_invalid_yaml(tmp_path: Path) -> None:
    message = _error(tmp_path, "service: web\nimage: [unclosed\n")
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert "must be a mapping" in _error(tmp_path, text)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_config(tmp_path / "nope.yml")
    assert caught.value.hint is not None
    assert "--config" in caught.value.hint


def test_a_directory_given_as_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_config(tmp_path)


def test_config_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yml")
    assert caught.value.exit_code == 2


def test_find_config_walks_up(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_config(nested) == path.resolve()


def test_find_config_says_what_to_do_when_there_is_none(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no dockroll\.yml") as caught:
        find_config(tmp_path)
    assert caught.value.hint is not None


def test_load_config_honours_dockroll_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "elsewhere.yml"
    path.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.setenv("DOCKROLL_CONFIG", str(path))
    assert load_config().service == "web"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(ValueError, match="frozen"):
        config.service = "other"  # type: ignore[misc]
    assert isinstance(config, Config)


def test_bytes_that_are_not_utf8_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "dockroll.yml"
    path.write_bytes(b"service: web\nimage: 127.0.0.1:5000/web\nnotes: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text: byte 0xe9 on line 3") as caught:
        load_config(path)
    assert caught.value.hint == "save the file as UTF-8"


def test_an_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    # Nine levels of nine aliases: 9**9 (387 million) strings once expanded.
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        levels.append(f"a{level}: &a{level} [{refs}]")
    path = _write(tmp_path, "service: web\nimage: 127.0.0.1:5000/web\n" + "\n".join(levels) + "\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"more than 100,000 values through YAML aliases"):
        load_config(path)
    assert time.monotonic() - started < 2.0


def test_a_deeply_nested_file_is_refused_not_a_crash(tmp_path: Path) -> None:
    path = _write(tmp_path, "service: web\nimage: x\ndeep: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_a_dockroll_yml_that_is_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "dockroll.yml").mkdir()
    with pytest.raises(ConfigError, match=r"dockroll.yml is not a file"):
        find_config(tmp_path)
    with pytest.raises(ConfigError, match=r"is a directory, not a config file"):
        load_config(tmp_path / "dockroll.yml")


def test_an_environment_names_its_registry_address_and_router_bind() -> None:
    base = {"service": "web", "image": "127.0.0.1:5000/team/web"}
    config = Config.model_validate(
        {
            **base,
            "environments": {
                "prod": {
                    "port": 8080,
                    "engine": "ssh://deploy@app1",
                    "registry": "Registry.internal:5000",
                    "router_bind": "0.0.0.0",
                }
            },
        }
    )
    prod = config.environments["prod"]
    assert (prod.registry, prod.router_bind) == ("registry.internal:5000", "0.0.0.0")
    assert config.environments["prod"].model_copy().registry == "registry.internal:5000"

    for field, value, problem in (
        ("registry", "http://registry:5000", "without a scheme or path"),
        ("registry", "registry:5000/team", "without a scheme or path"),
        ("router_bind", "everywhere", "an IP address"),
    ):
        with pytest.raises(ValidationError, match=problem):
            Config.model_validate({**base, "environments": {"prod": {"port": 1, field: value}}})
