"""Mistakes ``mypy --strict`` must catch: a misspelt attribute, a write to the
read-only context."""

from mcp_oauth_client import OAuthClientProvider


def f(p: OAuthClientProvider) -> None:
    print(p.contxt)
    p.context.current_tokens = None
