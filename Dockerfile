FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md constraints.txt alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 itinera
USER itinera

ENV ITINERA_HOST=0.0.0.0 \
    ITINERA_PORT=8000
EXPOSE 8000
CMD ["itinera", "serve"]
