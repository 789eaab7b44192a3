// Package storetest opens collector stores for tests: SQLite in a temporary
// directory, or a fresh database on the test binary's PostgreSQL.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/pgtest"
)

// SQLite opens a new SQLite store, closed when the test ends.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	return open(t, "sqlite://"+filepath.Join(t.TempDir(), "c.db"))
}

// Postgres opens a store on a new database of pg's server, or skips the
// test without one (fails it when HALLRATE_REQUIRE_POSTGRES is set).
func Postgres(t testing.TB, pg *pgtest.Shared) *store.DB {
	t.Helper()
	return open(t, pg.Need(t).NewDatabase(t))
}

func open(t testing.TB, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
