// Package timerange is the one bound on every time a client may name in
// the API (query parameters such as from, to, since, until and month):
// from Earliest up to Ahead past now. A time outside it is a client error
// that names the allowed range, never a query, a report or a 500.
package timerange

import (
	"fmt"
	"time"
)

// Earliest is the first instant a time parameter may name.
var Earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Ahead is how far past now a time parameter may reach.
const Ahead = 366 * 24 * time.Hour

// Latest is the last instant a time parameter may name at now.
func Latest(now time.Time) time.Time { return now.Add(Ahead).UTC().Truncate(time.Second) }

// Error is a time outside the allowed range.
type Error struct {
	Name          string // the parameter: "to", "month"
	Value         string // as the client sent it
	First, Latest time.Time
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %q is outside the allowed range %s to %s", e.Name, e.Value,
		e.First.Format(time.RFC3339), e.Latest.Format(time.RFC3339))
}

// Check returns an *Error when t (parsed from the parameter name's value)
// lies before Earliest or more than Ahead after now.
func Check(name, value string, t, now time.Time) error {
	if t.Before(Earliest) || t.After(Latest(now)) {
		return &Error{Name: name, Value: value, First: Earliest, Latest: Latest(now)}
	}
	return nil
}
