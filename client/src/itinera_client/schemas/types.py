"""Wire types shared by the aggregates: bounded strings, coordinates, JSON objects."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

Email = Annotated[
    str,
    Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", examples=["ana@example.com"]),
]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Title = Annotated[str, Meta(min_length=1, max_length=300)]
LongText = Annotated[str, Meta(max_length=100_000)]
Slug = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
CountryCode = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]
# Free-form objects (metadata, profiles, plans): at most 100 top-level keys;
# the body-size limit bounds the rest.
JsonObject = Annotated[dict[str, Any], Meta(max_length=100)]
