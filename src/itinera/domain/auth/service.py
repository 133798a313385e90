"""Login, refresh-token rotation and logout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itinera.db.unit_of_work import UnitOfWork
from itinera.domain.auth.repository import RefreshTokenRepository
from itinera.domain.orgs.repository import OrgRepository
from itinera.domain.users.repository import UserRepository
from itinera.errors import AuthenticationError
from itinera.security.passwords import PasswordHasher
from itinera.security.principal import Principal
from itinera.security.tokens import (
    ACCESS_TOKEN_SECONDS,
    AccessTokens,
    new_refresh_token,
    refresh_token_org,
    token_hash,
)
from itinera_client.schemas.auth import TokenPair

# One answer for unknown org, unknown user, wrong password and disabled user.
INVALID_CREDENTIALS = "the org, email or password is not right"
INVALID_REFRESH = "the refresh token is not valid"


class AuthService:
    def __init__(
        self,
        uow: UnitOfWork,
        passwords: PasswordHasher,
        tokens: AccessTokens,
        refresh_token_ttl: timedelta,
    ) -> None:
        self.uow = uow
        self.passwords = passwords
        self.tokens = tokens
        self.refresh_token_ttl = refresh_token_ttl

    async def login(self, org_slug: str, email: str, password: str) -> TokenPair:
        # Orgs belong to no tenant: the transaction learns its tenant from the slug.
        org = await OrgRepository(self.uow).get_by_slug(org_slug)
        if org is None:
            await self.passwords.verify_nothing(password)
            raise AuthenticationError(INVALID_CREDENTIALS)
        await self.uow.set_tenant(org.id)
        users = UserRepository(self.uow)
        user = await users.find_credentials(email)
        if user is None:
            await self.passwords.verify_nothing(password)
            raise AuthenticationError(INVALID_CREDENTIALS)
        if not await self.passwords.verify(user.password_hash, password) or user.disabled:
            raise AuthenticationError(INVALID_CREDENTIALS)
        if self.passwords.needs_rehash(user.password_hash):
            await users.update(user.id, password_hash=await self.passwords.hash(password))
        refresh_token = new_refresh_token(org.id)
        await RefreshTokenRepository(self.uow).start_family(
            user.id, token_hash(refresh_token), datetime.now(UTC) + self.refresh_token_ttl
        )
        return self._pair(Principal(user.id, org.id, user.role), refresh_token)

    async def refresh(self, refresh_token: str) -> TokenPair:
        org_id = refresh_token_org(refresh_token)
        # Before any statement: the tenant rides in the transaction's opening message.
        await self.uow.set_tenant(org_id)
        tokens = RefreshTokenRepository(self.uow)
        successor = new_refresh_token(org_id)
        rotated = await tokens.rotate(token_hash(refresh_token), token_hash(successor))
        if rotated is None:
            # A retired token came back: it leaked, or clients raced. Revoke the
            # whole family, and keep that write although we answer 401.
            if await tokens.revoke_family_of(token_hash(refresh_token)):
                await self.uow.commit()
            raise AuthenticationError(INVALID_REFRESH)
        user = await UserRepository(self.uow).get(rotated.user_id)
        if user is None or user.disabled:
            raise AuthenticationError(INVALID_REFRESH)
        return self._pair(Principal(user.id, org_id, user.role), successor)

    async def logout(self, principal: Principal, refresh_token: str) -> None:
        """Revoke the caller's token family.

        Text that is not a refresh token at all is refused (401, as on refresh);
        a well-formed token that is unknown, revoked or someone else's has
        nothing to revoke, so logging out twice is not an error.
        """
        org_id = refresh_token_org(refresh_token)
        if org_id != principal.org_id:
            return
        await RefreshTokenRepository(self.uow).revoke_family_of(
            token_hash(refresh_token), user_id=principal.user_id
        )

    def _pair(self, principal: Principal, refresh_token: str) -> TokenPair:
        return TokenPair(
            access_token=self.tokens.issue(principal),
            token_type="bearer",
            expires_in=ACCESS_TOKEN_SECONDS,
            refresh_token=refresh_token,
        )
