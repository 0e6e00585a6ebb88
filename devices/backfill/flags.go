package backfill

import (
	"fmt"
	"strings"
	"time"
)

// timeLayouts are the accepted forms of a time on the command line; those
// without an offset are read in the project's time zone.
var timeLayouts = []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"}

// ParseTime parses "2026-08-01", "2026-08-01T08:00", "2026-08-01T08:00:00"
// in loc, or an RFC 3339 time with its own offset.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse time %q: want 2006-01-02, 2006-01-02T15:04[:05] or RFC 3339", s)
}

// ParseReplacement parses "DEVICE@TIME", e.g. "garden-meter-main@2026-09-15T10:00".
func ParseReplacement(s string, loc *time.Location) (Replacement, error) {
	dev, at, ok := strings.Cut(s, "@")
	if !ok || dev == "" {
		return Replacement{}, fmt.Errorf("cannot parse meter replacement %q: want DEVICE@TIME", s)
	}
	t, err := ParseTime(at, loc)
	if err != nil {
		return Replacement{}, fmt.Errorf("cannot parse meter replacement %q: %w", s, err)
	}
	return Replacement{Device: dev, At: t}, nil
}

// ParseGap parses "FROM/TO" (every device) or "DEVICE@FROM/TO".
func ParseGap(s string, loc *time.Location) (Gap, error) {
	var g Gap
	span := s
	if dev, rest, ok := strings.Cut(s, "@"); ok {
		g.Device, span = dev, rest
	}
	from, to, ok := strings.Cut(span, "/")
	if !ok {
		return Gap{}, fmt.Errorf("cannot parse gap %q: want [DEVICE@]FROM/TO", s)
	}
	var err error
	if g.From, err = ParseTime(from, loc); err != nil {
		return Gap{}, fmt.Errorf("cannot parse gap %q: %w", s, err)
	}
	if g.To, err = ParseTime(to, loc); err != nil {
		return Gap{}, fmt.Errorf("cannot parse gap %q: %w", s, err)
	}
	return g, nil
}
