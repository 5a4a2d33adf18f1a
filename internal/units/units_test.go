package units

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"512B", 512},
		{"500MB", 500_000_000},
		{"500mb", 500_000_000},
		{"20GiB", 20 << 30},
		{"20gib", 20 << 30},
		{"20 GiB", 20 << 30},
		{" 20GiB ", 20 << 30},
		{"20Gi", 20 << 30},
		{"1.5GiB", 3 << 29},
		{"1.1GB", 1_100_000_000},
		{"0.5KiB", 512},
		{"1.0001KiB", 1024}, // a fraction of a byte is dropped
		{".5MiB", 512 << 10},
		{"3.KiB", 3072},
		{"2kB", 2000},
		{"1TiB", 1 << 40},
		{"1PB", 1e15},
		{"8191PiB", 8191 << 50},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBytes(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseBytesErrors(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"GiB", "does not start with a number"},
		{"-1GiB", "does not start with a number"},
		{".", "does not start with a number"},
		{"1.2.3MB", "does not start with a number"},
		{"20G", `unit "G" is ambiguous: write GB (powers of 1000) or GiB (powers of 1024)`},
		{"20k", `unit "k" is ambiguous`},
		{"20 bytes", `unknown unit "bytes"`},
		{"20GiBs", `unknown unit`},
		{"1e9", `unknown unit "e9"`},
		{"8192PiB", "too large"},
		{"99999999999999999999", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseBytes(tt.in)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "want a *ParseError, got %v", err)
			assert.Contains(t, err.Error(), tt.reason)
			assert.Contains(t, err.Error(), "e.g. 500MB, 20GiB", "the error shows the accepted forms")
		})
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{1024*1024 - 1, "1 MiB"}, // 1023.999 KiB rounds into the next unit
		{500_000_000, "476.8 MiB"},
		{20 << 30, "20 GiB"},
		{3 << 29, "1.5 GiB"},
		{1 << 40, "1 TiB"},
		{math.MaxInt64, "8 EiB"},
		{-1536, "-1.5 KiB"},
		{math.MinInt64, "-8 EiB"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Bytes(tt.in), "Bytes(%d)", tt.in)
	}
}

func TestStringRoundTrips(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{20 << 30, "20GiB"},
		{3 << 29, "1536MiB"},
		{500_000_000, "500MB"},
		{2000, "2kB"},
		{1000001, "1000001"},
		{1 << 50, "1PiB"},
	}
	for _, tt := range tests {
		got := String(tt.in)
		assert.Equal(t, tt.want, got)
		back, err := ParseBytes(got)
		require.NoError(t, err)
		assert.Equal(t, tt.in, back, "ParseBytes(String(%d))", tt.in)
	}
}
