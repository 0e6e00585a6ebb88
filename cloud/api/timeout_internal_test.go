package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/internal/storetest"
)

// A ClickHouse read cut off by a deadline ends, depending on where the
// driver notices, in context.DeadlineExceeded or in the socket's "i/o
// timeout" (the driver sets the connection's read deadline from the
// request's context, or from its read timeout). Both are the request
// taking too long: 503 "timeout", never 500 "internal error".
func TestReadTimeoutIsServiceUnavailable(t *testing.T) {
	name := storetest.Open(t).Database()
	o := chtest.Addr(t)
	slow := func(db *store.DB, ctx context.Context) error {
		t.Helper()
		rows, err := db.Conn().Query(ctx, "SELECT sleep(3)")
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if err == nil {
			t.Fatal("a 3 s query finished before its deadline")
		}
		return fmt.Errorf("cannot read hourly roll-ups: %w", err) // as the store wraps it
	}
	check := func(err error) {
		t.Helper()
		if e := toError(err); e.Status != http.StatusServiceUnavailable || e.Code != CodeTimeout {
			t.Errorf("%v: answered %d %q, want 503 %q", err, e.Status, e.Code, CodeTimeout)
		}
	}
	open := func(readTimeout time.Duration) *store.DB {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		db, err := store.Open(ctx, store.Options{Addr: o.Addr, User: o.User, Password: o.Password, Database: name, ReadTimeout: readTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}

	// The request's deadline: the driver answers either way.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	check(slow(open(0), ctx))
	cancel()

	// The socket's deadline alone (no context deadline to race it): always
	// the i/o timeout. Opening runs quick queries under the same timeout.
	err := slow(open(time.Second), context.Background())
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%v: not the socket's i/o timeout", err)
	}
	check(err)
}
