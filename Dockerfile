# One image for every brokerflow process (exchange simulator, gateway, flows, edge);
# docker-compose.yml picks the command.
FROM python:3.12-slim
# curl: the compose health checks of the edge and the flows' metrics port.
RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY brokerflow brokerflow
COPY domain domain
COPY connectors connectors
COPY sinks sinks
COPY flows flows
COPY simulator simulator
COPY edge edge
COPY console console
COPY quality quality
COPY bench bench
COPY sql sql
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["brokerflow"]
