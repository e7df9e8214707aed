# A static grapevine binary on a minimal image. Build context: the repo root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/grapevine ./cmd/grapevine

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/grapevine /usr/local/bin/grapevine
# proxy, Admin API, gossip (TCP and UDP)
EXPOSE 8000 8443 8001 7946 7946/udp
ENTRYPOINT ["/usr/local/bin/grapevine"]
CMD ["start"]
