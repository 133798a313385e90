"""What a client authenticates with: an API key, or the tokens of a login.

An API key (``itk_...``) is sent as it is, and never expires on its own
schedule. Tokens from a login are refreshed by the client: ahead of the
access token's expiry, or when the service answers 401 to it. The service
rotates the refresh token on every refresh and treats a retired token as
stolen (it revokes the whole login), so refreshes must be serialised: the
faces run them under one lock, and a caller who waited for it uses the
tokens the refresh it waited for brought instead of refreshing again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from itinera_client.calls import Call, json_of, nothing
from itinera_client.schemas.auth import LoginRequest, RefreshRequest, TokenPair

API_KEY_PREFIX = "itk_"
# Refresh this long before the access token's expiry, so that a request does
# not leave with a token that expires on its way (the service allows 30 s of
# clock difference on its side too).
EXPIRY_MARGIN_SECONDS = 60.0


class Credentials:
    """The credentials of one client face. Not shared between faces: each face
    serialises its own refreshes."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        tokens: TokenPair | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if api_key is not None and tokens is not None:
            raise ValueError("give an API key or tokens, not both")
        if api_key is not None and not api_key.startswith(API_KEY_PREFIX):
            raise ValueError(f"an API key starts with {API_KEY_PREFIX!r}")
        self._api_key = api_key
        self._clock = clock
        # The tokens and when to refresh them, swapped as one: a thread reading them while
        # another adopts new ones sees the old pair or the new, never a mix.
        self._login: tuple[TokenPair, float] | None = None
        if tokens is not None:
            self.adopt(tokens)

    @property
    def tokens(self) -> TokenPair | None:
        """The current tokens of a login (None with an API key or before a login)."""
        login = self._login
        return None if login is None else login[0]

    def bearer(self) -> str | None:
        """What goes into ``Authorization: Bearer``: the API key or the access token."""
        if self._api_key is not None:
            return self._api_key
        tokens = self.tokens
        return None if tokens is None else tokens.access_token

    @property
    def can_refresh(self) -> bool:
        return self._login is not None

    def is_expiring(self) -> bool:
        """Whether the access token is about to expire, by the client's own clock."""
        login = self._login
        return login is not None and self._clock() >= login[1]

    def needs_refresh(self, stale: str | None) -> bool:
        """Whether a caller who found the access token ``stale`` should refresh it now: not if
        another caller refreshed it meanwhile."""
        tokens = self.tokens
        return tokens is not None and tokens.access_token == stale

    def adopt(self, tokens: TokenPair) -> None:
        refresh_at = self._clock() + tokens.expires_in - EXPIRY_MARGIN_SECONDS
        self._login = (tokens, refresh_at)

    def forget(self) -> None:
        self._login = None

    def refresh_call(self) -> Call[TokenPair]:
        body = RefreshRequest(refresh_token=self._logged_in().refresh_token)
        return Call("POST", "/v1/auth/refresh", json_of(TokenPair), body=body, public=True)

    def logout_call(self) -> Call[None]:
        body = RefreshRequest(refresh_token=self._logged_in().refresh_token)
        return Call("POST", "/v1/auth/logout", nothing, body=body)

    def _logged_in(self) -> TokenPair:
        tokens = self.tokens
        if tokens is None:
            raise RuntimeError("not logged in")
        return tokens


def login_call(org: str, email: str, password: str) -> Call[TokenPair]:
    body = LoginRequest(org=org, email=email, password=password)
    return Call("POST", "/v1/auth/login", json_of(TokenPair), body=body, public=True)
