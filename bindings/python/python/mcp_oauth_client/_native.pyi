"""Stubs of the native module (checked with mypy.stubtest)."""

import asyncio
import os
from collections.abc import Awaitable
from typing import Any, Literal, final

__version__: str
__all__ = [
    "NativeProvider",
    "NativeOperation",
    "NativeRequest",
    "NativeFileStorage",
    "NativeRedisStorage",
    "NativeKeyringStorage",
    "NativeLoopbackReceiver",
    "NativeSigner",
    "assertion_signing_input",
    "assertion_finish",
    "open_browser",
    "parse_redirect",
    "generate_pkce",
    "flush_logs",
    "__version__",
]

_CallbackTuple = tuple[str | None, str | None, str | None, str | None, str | None, str | None]

@final
class NativeProvider:
    def __new__(
        cls,
        server_url: str,
        bridge: Any,
        *,
        client_metadata_json: str | None = None,
        native_storage: NativeFileStorage | NativeRedisStorage | None = None,
        has_handler: bool = False,
        http_timeout: float = 30.0,
        authorization_timeout: float = 300.0,
        client_metadata_url: str | None = None,
        validate_resource: bool = False,
        assume_s256_when_pkce_unadvertised: bool = False,
        skip_resource_check: bool = False,
        protocol_version: str | None = None,
        client_credentials: bool = False,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_endpoint_auth_method: str | None = None,
        scope: str | None = None,
        client_assertion: bool = False,
        issuer: str | None = None,
        resource_parameter: str | None = None,
        authorization_params: list[tuple[str, str]] = ...,
        token_params: list[tuple[str, str]] = ...,
        lease_wait: float = 30.0,
        carried_requests: bool = True,
        allow_http_hosts: list[str] = ...,
        server_scope_replaces_configured: bool = False,
        dpop: bool = False,
        dpop_key_pem: str | None = None,
        dpop_algorithm: str | None = None,
        grant_assertion: bool = False,
        idp_token_endpoint: str | None = None,
        idp_client_id: str | None = None,
        idp_client_secret: str | None = None,
        id_token: str | None = None,
        fresh_jwt: bool = False,
        workload_token: str | None = None,
        workload_token_file: str | None = None,
        device_code: bool = False,
        native_keyring: NativeKeyringStorage | None = None,
    ) -> NativeProvider: ...
    @property
    def server_url(self) -> str: ...
    def cached_headers(self, method: str, url: str) -> tuple[tuple[str, str], ...] | None: ...
    def cached_headers_at(
        self, scheme: str, host: bytes, port: int | None
    ) -> tuple[tuple[str, str], ...] | None | Literal[False]: ...
    @property
    def observes_responses(self) -> bool: ...
    def start_headers(
        self,
        method: str,
        url: str,
        timeout: float | None = None,
        event_loop: asyncio.AbstractEventLoop | None = None,
    ) -> NativeOperation: ...
    def start_handle_response(
        self,
        method: str,
        url: str,
        authorization: str | None,
        status: int,
        headers: list[tuple[str, str]],
        timeout: float | None = None,
        event_loop: asyncio.AbstractEventLoop | None = None,
    ) -> NativeOperation: ...
    def is_dpop_nonce_challenge(self, status: int, headers: list[tuple[str, str]]) -> bool: ...
    def observe_response(self, url: str, headers: list[tuple[str, str]]) -> None: ...
    def authorize(self) -> Awaitable[None]: ...
    def authorize_blocking(self, event_loop: asyncio.AbstractEventLoop) -> None: ...
    def logout(self) -> Awaitable[str]: ...
    def logout_blocking(self, event_loop: asyncio.AbstractEventLoop) -> str: ...
    def current_token_json(self) -> str | None: ...
    def context_json(self) -> str: ...

# ("send", NativeRequest) or ("done", the result)
_Step = tuple[str, Any]

@final
class NativeOperation:
    def next(self) -> Awaitable[_Step]: ...
    def next_blocking(self) -> _Step: ...

@final
class NativeRequest:
    @property
    def method(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...
    @property
    def body(self) -> bytes | None: ...
    @property
    def timeout(self) -> float: ...
    @property
    def max_response_bytes(self) -> int: ...
    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...
    def fail(self, kind: str, message: str) -> None: ...

@final
class NativeFileStorage:
    def __new__(cls, directory: str | os.PathLike[str], server_url: str) -> NativeFileStorage: ...
    @staticmethod
    def default_dir() -> str | None: ...
    def get_tokens(self) -> Awaitable[str | None]: ...
    def set_tokens(self, json: str) -> Awaitable[None]: ...
    def get_client_info(self) -> Awaitable[str | None]: ...
    def set_client_info(self, json: str) -> Awaitable[None]: ...

@final
class NativeKeyringStorage:
    def __new__(cls, service: str, server_url: str) -> NativeKeyringStorage: ...
    @staticmethod
    def default_service() -> str: ...
    def accounts(self, issuer: str) -> tuple[str, str]: ...
    def get_tokens(self) -> Awaitable[str | None]: ...
    def set_tokens(self, json: str) -> Awaitable[None]: ...
    def get_client_info(self) -> Awaitable[str | None]: ...
    def set_client_info(self, json: str) -> Awaitable[None]: ...
    def delete_all(self, registrations: bool) -> Awaitable[bool]: ...

@final
class NativeRedisStorage:
    def __new__(
        cls,
        urls: str,
        *,
        server_url: str | None = None,
        key_prefix: str | None = None,
        keys: list[tuple[str, bytes]] = ...,
        allow_unencrypted_values: bool = False,
        timeout: float = 5.0,
    ) -> NativeRedisStorage: ...
    def get_tokens(self) -> Awaitable[str | None]: ...
    def set_tokens(self, json: str) -> Awaitable[None]: ...
    def get_client_info(self) -> Awaitable[str | None]: ...
    def set_client_info(self, json: str) -> Awaitable[None]: ...

@final
class NativeLoopbackReceiver:
    def __new__(cls, redirect_uri: str, timeout: float) -> NativeLoopbackReceiver: ...
    @property
    def redirect_uri(self) -> str: ...
    def redirect(self, url: str) -> Awaitable[None]: ...
    def callback(self) -> Awaitable[_CallbackTuple]: ...

@final
class NativeSigner:
    def __new__(
        cls,
        private_key_pem: str,
        algorithm: str,
        *,
        lifetime_seconds: int = 300,
        extra_claims_json: str | None = None,
        key_id: str | None = None,
    ) -> NativeSigner: ...
    def client_assertion(self, issuer: str, subject: str, audience: str) -> str: ...

def assertion_signing_input(
    algorithm: str,
    issuer: str,
    subject: str,
    audience: str,
    *,
    lifetime_seconds: int = 300,
    extra_claims_json: str | None = None,
    key_id: str | None = None,
) -> str: ...
def assertion_finish(signing_input: str, algorithm: str, signature: bytes) -> str: ...
def open_browser(url: str) -> Awaitable[None]: ...
def parse_redirect(url_or_query: str) -> _CallbackTuple: ...
def flush_logs() -> None: ...
def generate_pkce() -> tuple[str, str]: ...
