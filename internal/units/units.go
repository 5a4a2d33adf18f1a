// Package units parses and formats byte sizes: "20GiB", "500MB", "1.5GiB".
package units

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Byte multiples. IEC (binary) and SI (decimal) prefixes both parse; the
// formatters use IEC, which is what disks and tools like du report.
const (
	KiB int64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
	EiB
)

// suffixes maps a unit, lower-cased, to its multiplier. Single letters
// ("20G") are left out on purpose: Docker reads them as binary, Kubernetes as
// decimal, and a quota off by 7% is worse than an error.
var suffixes = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
	"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB, "pib": PiB,
	// Kubernetes' binary suffixes (Gi for GiB): unambiguous, and familiar to
	// anyone who writes resource limits.
	"ki": KiB, "mi": MiB, "gi": GiB, "ti": TiB, "pi": PiB,
}

// ParseError is a size that cannot be parsed.
type ParseError struct {
	Input  string
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%q is not a size: %s (e.g. 500MB, 20GiB, 1.5GiB)", e.Input, e.Reason)
}

// ParseBytes parses a size: a non-negative number, optionally with a fraction,
// then an optional unit (B, kB/MB/GB/TB/PB as powers of 1000, KiB/MiB/GiB/TiB/PiB
// or Ki/Mi/Gi/Ti/Pi as powers of 1024; any case), with optional space between.
// A fraction of a byte is dropped.
func ParseBytes(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, &ParseError{Input: s, Reason: "it is empty"}
	}
	end := 0
	for end < len(in) && (in[end] >= '0' && in[end] <= '9' || in[end] == '.') {
		end++
	}
	num, rawUnit := in[:end], strings.TrimSpace(in[end:])
	unit := strings.ToLower(rawUnit)
	if num == "" || num == "." || strings.Count(num, ".") > 1 {
		return 0, &ParseError{Input: s, Reason: "it does not start with a number"}
	}
	mult, ok := suffixes[unit]
	if !ok {
		reason := fmt.Sprintf("unknown unit %q", rawUnit)
		if len(unit) == 1 {
			reason = fmt.Sprintf("unit %q is ambiguous: write %sB (powers of 1000) or %siB (powers of 1024)",
				rawUnit, strings.ToUpper(unit), strings.ToUpper(unit))
		}
		return 0, &ParseError{Input: s, Reason: reason}
	}
	// Exact arithmetic: 1.1GB is 1,100,000,000 bytes, not what a float makes of it.
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, &ParseError{Input: s, Reason: "it does not start with a number"}
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() {
		return 0, &ParseError{Input: s, Reason: "it is too large"}
	}
	return n.Int64(), nil
}

var iecUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// Bytes formats n for people: IEC units with at most one decimal, e.g.
// "512 B", "1.5 KiB", "20 GiB". It rounds, so use String where the value must
// survive a round trip.
func Bytes(n int64) string {
	if n < 0 {
		if n == math.MinInt64 {
			return "-8 EiB"
		}
		return "-" + Bytes(-n)
	}
	if n < KiB {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n), 0
	for v >= 1024 && i < len(iecUnits)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if s == "1024.0" && i < len(iecUnits)-1 {
		// 1023.96 KiB rounds up into the next unit.
		s, i = "1.0", i+1
	}
	return strings.TrimSuffix(s, ".0") + " " + iecUnits[i]
}

// String formats n exactly, in the largest unit that divides it: "20GiB",
// "500MB", "1536MiB", "1000001" (bytes). ParseBytes(String(n)) == n.
func String(n int64) string {
	if n == 0 {
		return "0"
	}
	units := []struct {
		name string
		mult int64
	}{
		{"PiB", PiB}, {"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
		{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3},
	}
	for _, u := range units {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
