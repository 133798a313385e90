"""Access tokens (HS256 JWTs), opaque refresh tokens and the form of API keys."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from typing import Literal

import jwt
import msgspec
import uuid_utils.compat

from itinera.errors import AuthenticationError
from itinera.security.principal import Principal

ACCESS_TOKEN_SECONDS = 900
# Replicas' clocks differ: a token another replica issued a moment "in the
# future", or that expired a moment ago by its clock, is still good.
LEEWAY_SECONDS = 30
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "org_id", "role", "iat", "exp", "jti", "iss", "aud"]


class AccessClaims(msgspec.Struct, frozen=True):
    sub: uuid.UUID
    org_id: uuid.UUID
    role: Literal["member", "admin"]
    exp: int


class AccessTokens:
    """Issues and verifies access tokens; the algorithm is pinned, ``exp`` and ``iat`` required.

    A client sends the same token with every request for up to 15 minutes:
    verified tokens are remembered (by their exact text, until their own
    expiry plus the leeway, when PyJWT too would refuse them) so the
    signature and claims are checked once, not per request.
    Whether the user still exists and is enabled is checked per request
    anyway, by the unit of work.
    """

    def __init__(
        self, secret: str, *, issuer: str, audience: str, remembered: int = 10_000
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._remembered = remembered
        self._verified: dict[str, tuple[Principal, int]] = {}

    def issue(self, principal: Principal, *, now: float | None = None) -> str:
        issued_at = int(time.time() if now is None else now)
        claims = {
            "sub": str(principal.user_id),
            "org_id": str(principal.org_id),
            "role": principal.role,
            "iat": issued_at,
            "exp": issued_at + ACCESS_TOKEN_SECONDS,
            "jti": str(uuid_utils.compat.uuid7()),
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, good_until = known
            if time.time() < good_until:
                return principal
            del self._verified[token]
        principal, good_until = self._verify(token)
        if len(self._verified) >= self._remembered:
            # Dicts keep insertion order: forget the oldest.
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (principal, good_until)
        return principal

    def _verify(self, token: str) -> tuple[Principal, int]:
        """The token's principal, and until when it is good (its expiry plus the leeway)."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=LEEWAY_SECONDS,
            )
            claims = msgspec.convert(payload, AccessClaims)
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the access token has expired") from exc
        except jwt.ImmatureSignatureError as exc:  # iat (or nbf) past now + leeway
            raise AuthenticationError("the access token is not valid yet") from exc
        except (jwt.InvalidTokenError, msgspec.ValidationError) as exc:
            raise AuthenticationError("the access token is not valid") from exc
        principal = Principal(user_id=claims.sub, org_id=claims.org_id, role=claims.role)
        return principal, claims.exp + LEEWAY_SECONDS


def new_refresh_token(org_id: uuid.UUID) -> str:
    """``<org_id>.<base64url(32 random bytes)>``: the prefix lets a lookup set the tenant first."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{org_id}.{secret}"


# Exactly what new_refresh_token makes: the canonical UUID text, a dot, 43 base64url characters.
_REFRESH_TOKEN = re.compile(r"([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\.[A-Za-z0-9_-]{43}")


def refresh_token_org(token: str) -> uuid.UUID:
    """The org a refresh token names; text of any other form is refused before it is hashed."""
    match = _REFRESH_TOKEN.fullmatch(token)
    if match is None:
        raise AuthenticationError("the refresh token is not valid")
    return uuid.UUID(match.group(1))


API_KEY_PREFIX = "itk_"

# Exactly what new_api_key makes: the prefix, the org's canonical UUID text, a dot,
# 43 base64url characters. Neither a JWT (three dot-separated parts, "eyJ…") nor a
# refresh token (no prefix) can be read as one.
_API_KEY = re.compile(r"itk_([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\.[A-Za-z0-9_-]{43}")


def new_api_key(org_id: uuid.UUID) -> str:
    """``itk_<org_id>.<base64url(32 random bytes)>``: the prefix tells it from an access
    token, and names the org so the lookup can set the tenant first."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{API_KEY_PREFIX}{org_id}.{secret}"


def is_api_key(token: str) -> bool:
    """Whether a bearer credential claims to be an API key (its form is checked apart)."""
    return token.startswith(API_KEY_PREFIX)


def api_key_org(key: str) -> uuid.UUID:
    """The org an API key names; text of any other form is refused before it is hashed."""
    match = _API_KEY.fullmatch(key)
    if match is None:
        raise AuthenticationError("the API key is not valid")
    return uuid.UUID(match.group(1))


def token_hash(token: str) -> bytes:
    """Only this digest is stored."""
    return hashlib.sha256(token.encode()).digest()
