FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md constraints.txt alembic.ini ./
COPY src ./src
COPY client ./client
COPY migrations ./migrations
RUN pip install --no-cache-dir -c constraints.txt ./client . \
    && useradd --system --uid 10001 itinera
USER itinera

# The container runs against real servers only: without DATABASE_URL (and
# ITINERA_ADMIN_DATABASE_URL, and REDIS_URL for `serve`) every command exits
# with a message naming what to set, rather than trying to start the embedded
# servers in a directory this user cannot write.
ENV ITINERA_EMBEDDED_SERVERS=false \
    ITINERA_HOST=0.0.0.0 \
    ITINERA_PORT=8000 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["itinera", "serve"]
