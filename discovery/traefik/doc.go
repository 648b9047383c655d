// Package traefik turns a service's Traefik settings into the traefik.*
// Consul tags that Traefik's Consul Catalog provider reads, encoded with
// Traefik's own label parser (github.com/traefik/paerser), so that what
// pilot writes is exactly what Traefik decodes.
//
// The tags depend only on the settings and the service name, never on the
// instance, so every replica carries identical tags: Traefik drops a router
// whose definitions conflict across instances of one service.
//
// Tags is pure and safe for concurrent use.
package traefik
