# One image for every prismflow stage; the command picks the stages.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/prismflow ./cmd/prismflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates postgresql \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/prismflow /usr/local/bin/prismflow
RUN useradd --system --home /var/lib/prismflow prismflow && mkdir -p /var/lib/prismflow && chown prismflow /var/lib/prismflow
USER prismflow
WORKDIR /var/lib/prismflow
ENV PRISMFLOW_DATA_DIR=/var/lib/prismflow
EXPOSE 8080
ENTRYPOINT ["prismflow"]
CMD ["run"]
