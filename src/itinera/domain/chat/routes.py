from __future__ import annotations

import uuid

import msgspec
from starlette.responses import Response
from starlette.types import Scope

from itinera import scope as request_scope
from itinera.buckets import per_user
from itinera.domain.chat.repository import ChatRepository
from itinera.domain.knowledge.search import KnowledgeSearch
from itinera.errors import NotFoundError
from itinera.http import UNDECODABLE, JSONResponse
from itinera.routing import Api, Context
from itinera_client.schemas.chat import (
    ChatMessage,
    ChatMessageCreate,
    ChatMessagePosted,
    ChatSession,
    ChatSessionCreate,
    ChatSessionListQuery,
)
from itinera_client.schemas.knowledge import SearchResult
from itinera_client.schemas.pagination import Page, PageQuery

api = Api(tag="chat")

# A few passages are context enough for the next turn; deeper retrieval is
# what POST /v1/knowledge/search is for.
HITS_K = 5


def _repository(ctx: Context) -> ChatRepository:
    return ctx.repository(ChatRepository)


@api.get(
    "/v1/chat/sessions",
    summary="List live chat sessions, newest first",
    response=Page[ChatSession],
)
async def list_chat_sessions(ctx: Context, query: ChatSessionListQuery) -> Response:
    sessions, next_key = await _repository(ctx).list_sessions(
        limit=query.limit, after=ctx.after(query.cursor, uuid.UUID), created_by=query.user_id
    )
    return JSONResponse(ctx.page(sessions, next_key))


@api.post(
    "/v1/chat/sessions",
    summary="Open a chat session; it expires 24 h after its last message",
    response=ChatSession,
    status=201,
)
async def create_chat_session(ctx: Context, body: ChatSessionCreate) -> Response:
    session = await _repository(ctx).create_session(ctx.principal.user_id, body.profile)
    return JSONResponse(
        session, status_code=201, headers={"Location": f"/v1/chat/sessions/{session.id}"}
    )


@api.get(
    "/v1/chat/sessions/{id:uuid}",
    summary="One live chat session (an expired one is not found)",
    response=ChatSession,
    statuses=(404,),
)
async def get_chat_session(ctx: Context) -> Response:
    session = await _repository(ctx).get_session(ctx.path_id())
    if session is None:
        raise NotFoundError("no such chat session")
    return JSONResponse(session)


@api.delete(
    "/v1/chat/sessions/{id:uuid}",
    summary="Delete a chat session (expired too) and its messages; its leads lose the link",
    statuses=(404,),
)
async def delete_chat_session(ctx: Context) -> Response:
    await _repository(ctx).delete_session(ctx.path_id())
    return Response(status_code=204)


@api.get(
    "/v1/chat/sessions/{id:uuid}/messages",
    summary="A live session's messages, oldest first",
    response=Page[ChatMessage],
    statuses=(404,),
)
async def list_chat_messages(ctx: Context, query: PageQuery) -> Response:
    messages, next_key = await _repository(ctx).list_messages(
        ctx.path_id(), limit=query.limit, after=ctx.after(query.cursor, uuid.UUID)
    )
    return JSONResponse(ctx.page(messages, next_key))


class _Role(msgspec.Struct):
    role: str | None = None


def message_bucket(scope: Scope) -> tuple[str, str]:
    """A user's turn takes from the ``agent`` bucket (it drives the agent); others ``crud``."""
    try:
        role = msgspec.json.decode(request_scope.body(scope), type=_Role).role
    except UNDECODABLE:
        role = None
    return per_user("agent" if role == "user" else "crud")(scope)


@api.post(
    "/v1/chat/sessions/{id:uuid}/messages",
    summary="Post a message and renew the session; a user message comes back with knowledge hits",
    response=ChatMessagePosted,
    status=201,
    statuses=(404,),
    bucket=message_bucket,
)
async def post_chat_message(ctx: Context, body: ChatMessageCreate) -> Response:
    message = await _repository(ctx).add_message(
        ctx.path_id(), body.role, body.content, body.metadata
    )
    hits: list[SearchResult] = []
    if body.role == "user":
        # Full text only (a message carries no vector), any word counting:
        # a conversational turn rarely has all its words in one passage. A
        # long message searches its first distinct words, never refused. A
        # text search reads no HNSW setting, so none is set.
        hits = await ctx.repository(KnowledgeSearch).by_any_word(body.content, HITS_K)
    location = f"/v1/chat/sessions/{message.session_id}/messages"
    return JSONResponse(
        ChatMessagePosted(message=message, hits=hits),
        status_code=201,
        headers={"Location": location},
    )
