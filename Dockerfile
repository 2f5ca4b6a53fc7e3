# One image for every brokerflow process (flows, gateway, edge); docker-compose.yml picks the command.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY brokerflow brokerflow
COPY domain domain
COPY connectors connectors
COPY sinks sinks
COPY flows flows
COPY simulator simulator
COPY edge edge
COPY bench bench
COPY sql sql
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["brokerflow"]
