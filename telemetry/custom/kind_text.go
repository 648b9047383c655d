package custom

import "fmt"

// UnmarshalText reads a metric type as the config writes it: counter, gauge
// or histogram, the one list of Kind's names.
func (k *Kind) UnmarshalText(text []byte) error {
	switch kind := Kind(text); kind {
	case Counter, Gauge, Histogram:
		*k = kind
		return nil
	}
	return fmt.Errorf("%q must be one of counter, gauge, histogram", text)
}
