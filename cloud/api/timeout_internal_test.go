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

// A ClickHouse read cut off by the request's deadline ends, depending on
// where the driver notices, in context.DeadlineExceeded or in the socket's
// "i/o timeout" (the driver sets the connection's read deadline from the
// context). Both are the request taking too long: 503 "timeout", never 500.
func TestReadTimeoutIsServiceUnavailable(t *testing.T) {
	name := storetest.Open(t).Database()
	o := chtest.Addr(t)
	socket := 0
	for attempt := 0; attempt < 5 && socket == 0; attempt++ {
		// A new connection, established and idle, so the query's read is
		// what the deadline cuts.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		db, err := store.Open(ctx, store.Options{Addr: o.Addr, User: o.User, Password: o.Password, Database: name})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
		rows, err := db.Conn().Query(ctx, "SELECT sleep(3)")
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		cancel()
		db.Close()
		if err == nil {
			t.Fatal("a 3 s query finished within 300 ms")
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			socket++
		}
		err = fmt.Errorf("cannot read hourly roll-ups: %w", err) // as the store wraps it
		if e := toError(err); e.Status != http.StatusServiceUnavailable || e.Code != CodeTimeout {
			t.Errorf("%v: answered %d %q, want 503 %q", err, e.Status, e.Code, CodeTimeout)
		}
	}
	if socket == 0 {
		t.Error("no attempt ended in the socket's i/o timeout: the case is not tested")
	}
}
