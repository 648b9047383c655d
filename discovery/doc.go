// Package discovery will hold pilot's own service-discovery interfaces
// (Registrar, Watcher) in pilot's own types, with Consul and Docker
// implementations in subpackages. It is empty until the Consul work lands;
// jobs publish StateChanges that the registrar will subscribe to.
package discovery
