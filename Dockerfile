# pilot as a static binary in a minimal image that other images copy from:
#   COPY --from=pilot /pilot /usr/local/bin/pilot
ARG GO_IMAGE=golang:1.26-bookworm
FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /pilot ./cmd/pilot

FROM scratch
COPY --from=build /pilot /pilot
ENTRYPOINT ["/pilot"]
