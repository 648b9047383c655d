// Package telemetry will own the Prometheus registry pilot injects into its
// parts, pilot's collectors, and the child-process and Node collectors. It
// is empty until the telemetry work lands.
package telemetry
