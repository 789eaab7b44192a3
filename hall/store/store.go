// Package store keeps what the collector receives and makes: press records,
// device statuses, cases, evaluations for the e-supervision system and
// follow-ups of bad ratings. It speaks database/sql to SQLite (the embedded
// default, pure Go) or PostgreSQL (several collectors side by side), with
// the same SQL for both and the schema migrated at open.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite"
)

// Errors of the store's methods, to test with errors.Is.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrWrongState  = errors.New("store: not in a state that allows this")
	ErrUnsupported = errors.New("store: unsupported dsn")
	ErrConflict    = errors.New("store: conflicts with what is stored")
)

// dialect is what differs between SQLite and PostgreSQL.
type dialect struct {
	postgres bool
	serial   string // an auto-incrementing primary key column
	greatest string // the two-argument maximum
	// skipLocked ends a sub-select of queue rows to claim.
	skipLocked string
}

var (
	sqliteDialect   = dialect{serial: "INTEGER PRIMARY KEY AUTOINCREMENT", greatest: "MAX"}
	postgresDialect = dialect{postgres: true, serial: "BIGSERIAL PRIMARY KEY", greatest: "GREATEST", skipLocked: " FOR UPDATE SKIP LOCKED"}
)

// q rewrites the ? placeholders of s as $1, $2, ... for PostgreSQL. The SQL
// of this package has no ? in literals.
func (d dialect) q(s string) string {
	if !d.postgres || !strings.Contains(s, "?") {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// DB is the store on a SQL database.
type DB struct {
	db  *sql.DB
	d   dialect
	log *slog.Logger
	// Kind is "sqlite" or "postgres".
	Kind string
}

// Open opens the database a dsn names and migrates its schema:
// "sqlite:///var/lib/hallrate/collector.db" (an absolute path after
// sqlite://, or a relative one as in sqlite://collector.db) or
// "postgres://user@host/db" (also "postgresql://").
func Open(ctx context.Context, dsn string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		db  *sql.DB
		d   dialect
		err error
	)
	kind := ""
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		kind, d = "sqlite", sqliteDialect
		path := strings.TrimPrefix(dsn, "sqlite://")
		db, err = openSQLite(path)
		if fi, serr := os.Stat(filepath.Dir(path)); err == nil && serr == nil && fi.Mode().Perm()&0o007 != 0 {
			log.Warn("the database's directory is open to others; make it 0750", "dir", filepath.Dir(path),
				"mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		kind, d = "postgres", postgresDialect
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(16)
			db.SetMaxIdleConns(8)
		}
	default:
		return nil, fmt.Errorf("%w %q: want sqlite:///path or postgres://user@host/db", ErrUnsupported, redact(dsn))
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", redact(dsn), err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", redact(dsn), err)
	}
	v, err := migrate(ctx, db, d)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", redact(dsn), err)
	}
	log.Debug("store open", "kind", kind, "schema_version", v)
	return &DB{db: db, d: d, log: log, Kind: kind}, nil
}

func openSQLite(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("empty path")
	}
	if err := privateFile(path); err != nil {
		return nil, err
	}
	// Every commit is fsynced (synchronous FULL): a message is
	// acknowledged to the broker only after its commit, so a commit must
	// survive power loss.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One connection: SQLite has one writer anyway, and this way no
	// transaction waits on a lock held by another connection of ours.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// redact hides a password in a dsn for messages.
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if u, _, ok := strings.Cut(userinfo, ":"); ok {
		return dsn[:scheme+3] + u + ":xxx" + dsn[at:]
	}
	return dsn
}

// Close closes the database.
func (s *DB) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Ping checks the database answers.
func (s *DB) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction and commits when it returns nil.
func (s *DB) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: commit: %w", what, err)
	}
	return nil
}

// lockJoins serialises, across collectors on one PostgreSQL database, the
// transactions that join ratings with cases, so that two collectors never
// join one case twice or miss a case added while they join. SQLite has one
// writer and needs nothing.
func (s *DB) lockJoins(tx *sql.Tx) error {
	if !s.d.postgres {
		return nil
	}
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(726100002)`); err != nil {
		return fmt.Errorf("lock joins: %w", err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// privateFile makes sure the database file at path exists and only its
// owner and group may read it: created 0600, and an existing file that
// others may read loses those bits. SQLite gives its -wal and -shm files
// the database file's mode. The directory must exist: a mistyped path is
// an error, not a new directory.
func privateFile(path string) error {
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return fmt.Errorf("directory of the database: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		if err := f.Chmod(perm &^ 0o007); err != nil {
			return fmt.Errorf("database file: others may read it (mode %04o) and chmod failed: %w", perm, err)
		}
	}
	return nil
}
