"""Registry authentication as an :class:`httpx.Auth` flow.

A registry answers an unauthenticated request with ``401`` and a challenge:
``Basic realm=…`` (htpasswd) or ``Bearer realm=…,service=…,scope=…`` (the
token flow of distribution's ``spec/auth/token.md``). For Bearer the client
asks the realm for a token for that service and scope, with basic credentials
when it has some, and repeats the request once with ``Authorization: Bearer``.
Tokens are cached per scope until they expire, so a copy of fifty blobs asks
the token service once per repository and action, not fifty times.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx

from dockroll.errors import RegistryAuthError
from dockroll.registry._credentials import ENV_PASSWORD, ENV_USERNAME, Credentials

__all__ = ["Challenge", "RegistryAuth", "auth_hint", "parse_challenge", "scopes_for"]

_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags)(?:/|$)")
# Spec: a token without expires_in is good for 60 seconds.
_DEFAULT_TOKEN_LIFETIME = 60.0
# Renew a little early so a token does not expire between check and use.
_EXPIRY_MARGIN = 5.0


def auth_hint(host: str) -> str:
    """What a user does to give dockroll credentials for ``host``."""
    return f"run `docker login {host}` or set {ENV_USERNAME} and {ENV_PASSWORD}"


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    """``basic`` or ``bearer`` (lower case)."""
    realm: str = ""
    service: str = ""
    scopes: tuple[str, ...] = ()


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``WWW-Authenticate``; None when it is absent or not understood."""
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in {"basic", "bearer"}:
        return None
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = value.replace('\\"', '"')
    scope = params.get("scope", "")
    return Challenge(
        scheme=scheme,
        realm=params.get("realm", ""),
        service=params.get("service", ""),
        scopes=tuple(scope.split()) if scope else (),
    )


def scopes_for(request: httpx.Request) -> tuple[str, ...]:
    """The token scopes a request needs, derived from its method and path."""
    path = request.url.path
    if path.rstrip("/") == "/v2/_catalog":
        return ("registry:catalog:*",)
    match = _REPOSITORY_PATH.match(path)
    if match is None:
        return ()
    name = match.group("name")
    if request.method in {"GET", "HEAD"}:
        action = "pull"
    elif request.method == "DELETE":
        action = "delete"
    else:
        action = "pull,push"
    scopes = [f"repository:{name}:{action}"]
    mount_from = request.url.params.get("from")
    if request.method == "POST" and mount_from:
        scopes.append(f"repository:{mount_from}:pull")
    return tuple(scopes)


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryAuth(httpx.Auth):
    """Anonymous, Basic and Bearer-token authentication for one registry host."""

    # Blob uploads stream their bodies; they are sent after a cached token
    # (from the upload's POST) is already attached, so no body is replayed.
    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        host: str,
        credentials: Credentials | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host = host
        self._credentials = credentials
        self._clock = clock
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._basic = False
        self.token_requests = 0
        """How many times a token was fetched (a cache that works keeps this low)."""

    def __repr__(self) -> str:
        return f"RegistryAuth(host={self._host!r}, credentials={self._credentials!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scopes = scopes_for(request)
        self._authorize(request, scopes)
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return
        if challenge.scheme == "basic":
            if self._credentials is None or self._basic:
                return
            self._basic = True
            request.headers["Authorization"] = self._basic_header(self._credentials)
        else:
            if not challenge.realm:
                return
            wanted = tuple(dict.fromkeys((*challenge.scopes, *scopes)))
            token = yield from self._fetch_token(challenge, wanted)
            self._tokens[scopes] = token
            request.headers["Authorization"] = f"Bearer {token.value}"
        yield request

    def _authorize(self, request: httpx.Request, scopes: tuple[str, ...]) -> None:
        if "Authorization" in request.headers:
            return
        token = self._cached_token(scopes)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token.value}"
        elif self._basic and self._credentials is not None:
            # Basic credentials are sent only once the registry asked for them.
            request.headers["Authorization"] = self._basic_header(self._credentials)

    def _cached_token(self, scopes: tuple[str, ...]) -> _Token | None:
        # A token granted for more scopes serves a request needing fewer: the
        # PUT that closes a mount-or-upload (scopes: target) reuses the POST's
        # token (scopes: target and source), so its streamed body is not replayed.
        now = self._clock()
        needed = set(scopes)
        for granted, token in self._tokens.items():
            if token.expires_at > now and needed <= set(granted):
                return token
        return None

    def _fetch_token(
        self, challenge: Challenge, scopes: tuple[str, ...]
    ) -> Generator[httpx.Request, httpx.Response, _Token]:
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params.extend(("scope", scope) for scope in scopes)
        headers = {}
        if self._credentials is not None:
            params.append(("account", self._credentials.username))
            headers["Authorization"] = self._basic_header(self._credentials)
        self.token_requests += 1
        response = yield httpx.Request(
            "GET", httpx.URL(challenge.realm, params=params), headers=headers
        )
        response.read()
        if response.status_code != 200:
            who = f"as {self._credentials.username!r}" if self._credentials else "anonymously"
            raise RegistryAuthError(
                f"the token service of registry {self._host} refused a token {who} "
                f"for {' '.join(scopes) or 'the registry'}: HTTP {response.status_code}",
                hint=auth_hint(self._host),
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        value = None
        if isinstance(body, dict):
            value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise RegistryAuthError(
                f"the token service of registry {self._host} answered without a token"
            )
        lifetime = _DEFAULT_TOKEN_LIFETIME
        if isinstance(body, dict) and isinstance(body.get("expires_in"), int | float):
            lifetime = max(float(body["expires_in"]), _DEFAULT_TOKEN_LIFETIME)
        return _Token(value, self._clock() + lifetime - _EXPIRY_MARGIN)

    @staticmethod
    def _basic_header(credentials: Credentials) -> str:
        pair = f"{credentials.username}:{credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
