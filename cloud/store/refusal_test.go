package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		err   error
		cause string
	}{
		{&clickhouse.Exception{Code: 395}, "check_failed"},
		{fmt.Errorf("cannot insert 3 readings: %w", &clickhouse.Exception{Code: 53}), "type_mismatch"},
		{&clickhouse.Exception{Code: 469}, "constraint_violated"},
		{&clickhouse.Exception{Code: 252}, ""}, // too many parts: merges catch up
		{&clickhouse.Exception{Code: 60}, ""},  // unknown table
		{&clickhouse.Exception{Code: 241}, ""}, // memory limit
		{&clickhouse.Exception{Code: 159}, ""}, // timeout
		{fmt.Errorf("cannot insert: %w", io.EOF), ""},
		{context.DeadlineExceeded, ""},
		{errors.New("read: connection reset by peer"), ""},
		{nil, ""},
	} {
		cause, ok := Refused(tc.err)
		if cause != tc.cause || ok != (tc.cause != "") {
			t.Errorf("Refused(%v) = %q, %v; want %q", tc.err, cause, ok, tc.cause)
		}
	}
}

// Months are counted in the server's time zone, as toYYYYMM counts them.
func TestMonthGroups(t *testing.T) {
	sh := time.FixedZone("CST", 8*3600)
	var ts []int64
	for m := 0; m < 7; m++ {
		// 20:00 UTC on the last day of each month: the next month in CST.
		ts = append(ts, time.Date(2024, time.Month(m+2), 0, 20, 0, 0, 0, time.UTC).UnixMilli())
	}
	ts = append(ts, ts[0]) // a second row of the first month
	if g := monthGroups(ts, time.UTC, 7); g != nil {
		t.Errorf("7 months, limit 7: %v, want one group", g)
	}
	got := fmt.Sprint(monthGroups(ts, time.UTC, 3))
	if want := "[[0 7 1 2] [3 4 5] [6]]"; got != want {
		t.Errorf("UTC groups %s, want %s", got, want)
	}
	// In CST the rows fall in February … August, the same split.
	if got := fmt.Sprint(monthGroups(ts, sh, 3)); got != "[[0 7 1 2] [3 4 5] [6]]" {
		t.Errorf("CST groups %s", got)
	}
	// Two rows a few hours apart: one month in UTC, two in CST.
	pair := []int64{time.Date(2024, 3, 31, 10, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2024, 3, 31, 20, 0, 0, 0, time.UTC).UnixMilli()}
	if g := monthGroups(pair, time.UTC, 1); g != nil {
		t.Errorf("UTC: %v, want one group", g)
	}
	if got := fmt.Sprint(monthGroups(pair, sh, 1)); got != "[[0] [1]]" {
		t.Errorf("CST: %s, want two groups", got)
	}
}
