package timerange

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	f := func(v string, ok bool) {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		err = Check("to", v, tm, now)
		if (err == nil) != ok {
			t.Errorf("Check(%s) = %v, want ok %v", v, err, ok)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || !strings.Contains(err.Error(), "2000-01-01T00:00:00Z to 2027-12-07T10:30:00Z")) {
			t.Errorf("Check(%s) = %v: does not name the allowed range", v, err)
		}
	}
	f("2026-12-06T10:30:00Z", true)
	f("2000-01-01T00:00:00Z", true)
	f("1999-12-31T23:59:59Z", false)
	f("2027-12-07T10:30:00Z", true)
	f("2027-12-07T10:30:01Z", false)
	f("9999-12-31T23:59:59Z", false)
	f("0001-01-01T00:00:00Z", false)
}
