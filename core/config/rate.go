package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is an allowance of Count events per Per, written "1/s", "20/min",
// "5/day" or "3/10s".
type Rate struct {
	Count int
	Per   time.Duration
}

const (
	day         = 24 * time.Hour
	maxRatePer  = 7 * day
	maxRateCnt  = 1_000_000
	rateFormats = `"N/s", "N/min", "N/h", "N/day" or "N/<duration>" such as "3/10s"`
)

var rateUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": day, "day": day,
}

// ParseRate parses a rate such as "1/s", "20/min", "5/day" or "3/10s".
func ParseRate(s string) (Rate, error) {
	count, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("expected a rate such as %s, got %q", rateFormats, s)
	}
	count, unit = strings.TrimSpace(count), strings.TrimSpace(unit)
	n, err := strconv.Atoi(count)
	if err != nil || strings.HasPrefix(count, "+") {
		return Rate{}, fmt.Errorf("rate %q: count %q is not a whole number", s, count)
	}
	if n < 1 || n > maxRateCnt {
		return Rate{}, fmt.Errorf("rate %q: count must be between 1 and %d", s, maxRateCnt)
	}
	per, ok := rateUnits[unit]
	if !ok {
		d, err := time.ParseDuration(unit)
		if err != nil {
			return Rate{}, fmt.Errorf("rate %q: unknown unit %q; use s, min, h, day or a duration such as 10s", s, unit)
		}
		per = d
	}
	if per < time.Millisecond || per > maxRatePer {
		return Rate{}, errors.New("rate " + strconv.Quote(s) + ": period must be between 1ms and 7 days")
	}
	return Rate{Count: n, Per: per}, nil
}

// String returns the canonical form, which ParseRate reads back.
func (r Rate) String() string {
	switch r.Per {
	case time.Second:
		return fmt.Sprintf("%d/s", r.Count)
	case time.Minute:
		return fmt.Sprintf("%d/min", r.Count)
	case time.Hour:
		return fmt.Sprintf("%d/h", r.Count)
	case day:
		return fmt.Sprintf("%d/day", r.Count)
	}
	return fmt.Sprintf("%d/%s", r.Count, r.Per)
}

// IsZero reports whether the rate is unset.
func (r Rate) IsZero() bool { return r.Count == 0 || r.Per == 0 }

// PerSecond returns the rate as events per second (golang.org/x/time/rate.Limit).
func (r Rate) PerSecond() float64 {
	if r.IsZero() {
		return 0
	}
	return float64(r.Count) / r.Per.Seconds()
}

// Interval returns the mean time between events (rate.Every's argument).
func (r Rate) Interval() time.Duration {
	if r.Count == 0 {
		return 0
	}
	return r.Per / time.Duration(r.Count)
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
