package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var byteUnits = []struct {
	suffix string
	size   uint64
}{
	// Longest suffixes first, so that "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseBytes reads a size with a unit: "512MiB", "1.5GiB", "300MB", "4096B".
// A bare number is refused, as a unit is easy to get wrong by a factor of
// 1,024 or 1,000,000.
func ParseBytes(s string) (uint64, error) {
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) || v*float64(u.size) >= math.MaxUint64 {
			break
		}
		return uint64(v * float64(u.size)), nil
	}
	return 0, fmt.Errorf("%q is not a size (use e.g. 512MiB, 1GiB, 300MB)", s)
}
