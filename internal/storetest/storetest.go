// Package storetest opens a cloud/store database for tests: a fresh
// database on the test ClickHouse server (internal/chtest), migrated with
// the components' migrations and closed when the test ends. It lives apart
// from chtest because cloud/store's own tests import chtest.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/internal/chtest"
)

// Open creates a test database, opens the store on it and applies the
// migrations.
func Open(t testing.TB, migrations ...store.Migration) *store.DB {
	t.Helper()
	_, name := chtest.NewDatabase(t)
	o := chtest.Addr(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.Open(ctx, store.Options{Addr: o.Addr, User: o.User, Password: o.Password, Database: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, migrations...); err != nil {
		t.Fatal(err)
	}
	return db
}
