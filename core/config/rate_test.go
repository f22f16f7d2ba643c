package config

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantStr string
		wantErr bool
	}{
		{in: "1/s", want: Rate{1, time.Second}, wantStr: "1/s"},
		{in: "20/min", want: Rate{20, time.Minute}, wantStr: "20/min"},
		{in: "20/m", want: Rate{20, time.Minute}, wantStr: "20/min"},
		{in: "5/day", want: Rate{5, day}, wantStr: "5/day"},
		{in: "5/d", want: Rate{5, day}, wantStr: "5/day"},
		{in: "100/hour", want: Rate{100, time.Hour}, wantStr: "100/h"},
		{in: "3/10s", want: Rate{3, 10 * time.Second}, wantStr: "3/10s"},
		{in: " 2 / second ", want: Rate{2, time.Second}, wantStr: "2/s"},
		{in: "1/1m30s", want: Rate{1, 90 * time.Second}, wantStr: "1/1m30s"},
		{in: "1", wantErr: true},
		{in: "0/s", wantErr: true},
		{in: "-1/s", wantErr: true},
		{in: "+1/s", wantErr: true},
		{in: "1.5/s", wantErr: true},
		{in: "1/fortnight", wantErr: true},
		{in: "1/0s", wantErr: true},
		{in: "1/8d", wantErr: true},
		{in: "1/-1s", wantErr: true},
		{in: "2000000/s", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseRate(%q) = %v, want error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRate(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseRate(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.wantStr {
				t.Fatalf("String() = %q, want %q", got.String(), tt.wantStr)
			}
		})
	}
}

func TestRateConversions(t *testing.T) {
	r := Rate{Count: 20, Per: time.Minute}
	if got := r.Interval(); got != 3*time.Second {
		t.Errorf("Interval() = %v, want 3s", got)
	}
	if got := r.PerSecond(); got < 0.3333 || got > 0.3334 {
		t.Errorf("PerSecond() = %v, want 1/3", got)
	}
}

// FuzzParseRate checks that ParseRate never panics and that every rate it
// accepts survives a String/ParseRate round trip.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"1/s", "20/min", "5/day", "3/10s", "1/1m30s", "x/y", "/", "9999999/s", "1/1ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Count < 1 || r.Per <= 0 {
			t.Fatalf("ParseRate(%q) accepted invalid %+v", s, r)
		}
		back, err := ParseRate(r.String())
		if err != nil {
			t.Fatalf("ParseRate(%q).String() = %q does not parse: %v", s, r.String(), err)
		}
		if back != r {
			t.Fatalf("round trip of %q: %+v became %+v", s, r, back)
		}
	})
}
