FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY messages messages
COPY actors actors
COPY supervisor supervisor
COPY venue venue
RUN pip install --no-cache-dir .
ENTRYPOINT []
