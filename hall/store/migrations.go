package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// migrations is the schema's history, applied in order at open. Never edit
// an entry that was released: append a new one. The schema_version table
// holds how many have been applied.
var migrations = []func(tx *sql.Tx, d dialect) error{
	// 1: records, devices, cases, evaluations and follow-ups.
	func(tx *sql.Tx, d dialect) error {
		return execAll(tx, d,
			`CREATE TABLE rating (
				id TEXT PRIMARY KEY,
				device TEXT NOT NULL,
				hall TEXT NOT NULL,
				counter TEXT NOT NULL,
				epoch TEXT NOT NULL,
				seq BIGINT NOT NULL,
				button INTEGER NOT NULL,
				label TEXT NOT NULL,
				satisfaction INTEGER NOT NULL,
				disposition TEXT NOT NULL,
				ticket TEXT NOT NULL DEFAULT '',
				staff TEXT NOT NULL DEFAULT '',
				item TEXT NOT NULL DEFAULT '',
				project_no TEXT NOT NULL DEFAULT '',
				pressed_at TEXT NOT NULL,
				pressed_ms BIGINT NOT NULL,
				service_day TEXT NOT NULL,
				clock_synced INTEGER NOT NULL,
				verified INTEGER NOT NULL,
				stored_ms BIGINT NOT NULL,
				join_state TEXT NOT NULL DEFAULT '',
				case_no TEXT NOT NULL DEFAULT '',
				join_mark BIGINT NOT NULL DEFAULT 0,
				raw TEXT NOT NULL
			)`,
			`CREATE INDEX rating_stream ON rating (device, epoch, seq)`,
			`CREATE INDEX rating_join ON rating (join_state, stored_ms)`,
			`CREATE INDEX rating_ticket ON rating (hall, counter, ticket, service_day)`,
			`CREATE INDEX rating_pressed ON rating (pressed_ms)`,
			`CREATE TABLE device (
				device TEXT PRIMARY KEY,
				hall TEXT NOT NULL,
				counter TEXT NOT NULL,
				online INTEGER NOT NULL DEFAULT 0,
				version TEXT NOT NULL DEFAULT '',
				boot_id TEXT NOT NULL DEFAULT '',
				epoch TEXT NOT NULL DEFAULT '',
				last_seq BIGINT,
				pending BIGINT,
				outbox_full INTEGER NOT NULL DEFAULT 0,
				status_at TEXT NOT NULL DEFAULT '',
				status_ms BIGINT NOT NULL DEFAULT 0,
				status TEXT NOT NULL DEFAULT ''
			)`,
			`CREATE TABLE device_epoch (
				device TEXT NOT NULL,
				epoch TEXT NOT NULL,
				received BIGINT NOT NULL,
				max_seq BIGINT NOT NULL,
				first_ms BIGINT NOT NULL,
				last_ms BIGINT NOT NULL,
				PRIMARY KEY (device, epoch)
			)`,
			`CREATE TABLE hcase (
				id `+d.serial+`,
				project_no TEXT NOT NULL UNIQUE,
				task_code TEXT NOT NULL DEFAULT '',
				task_name TEXT NOT NULL DEFAULT '',
				dept_code TEXT NOT NULL DEFAULT '',
				dept_name TEXT NOT NULL DEFAULT '',
				hall TEXT NOT NULL,
				counter TEXT NOT NULL,
				ticket TEXT NOT NULL,
				staff TEXT NOT NULL DEFAULT '',
				staff_name TEXT NOT NULL DEFAULT '',
				accepted_at TEXT NOT NULL DEFAULT '',
				finished_at TEXT NOT NULL DEFAULT '',
				accepted_ms BIGINT,
				finished_ms BIGINT,
				service_day TEXT NOT NULL,
				received_ms BIGINT NOT NULL
			)`,
			`CREATE INDEX hcase_ticket ON hcase (hall, counter, ticket, service_day)`,
			`CREATE TABLE esup_evaluation (
				rating_id TEXT PRIMARY KEY,
				project_no TEXT NOT NULL UNIQUE,
				hall TEXT NOT NULL,
				counter TEXT NOT NULL,
				ticket TEXT NOT NULL,
				device TEXT NOT NULL,
				pro_manager TEXT NOT NULL,
				satisfaction TEXT NOT NULL,
				assess_time TEXT NOT NULL,
				payload TEXT NOT NULL,
				state TEXT NOT NULL,
				attempts INTEGER NOT NULL DEFAULT 0,
				next_ms BIGINT NOT NULL DEFAULT 0,
				lease_owner TEXT NOT NULL DEFAULT '',
				lease_until BIGINT NOT NULL DEFAULT 0,
				last_status INTEGER NOT NULL DEFAULT 0,
				last_error TEXT NOT NULL DEFAULT '',
				last_body TEXT NOT NULL DEFAULT '',
				created_ms BIGINT NOT NULL,
				delivered_ms BIGINT,
				taken_at TEXT
			)`,
			`CREATE INDEX esup_evaluation_due ON esup_evaluation (state, next_ms)`,
			`CREATE TABLE followup (
				id `+d.serial+`,
				rating_id TEXT NOT NULL UNIQUE,
				hall TEXT NOT NULL,
				counter TEXT NOT NULL,
				ticket TEXT NOT NULL,
				project_no TEXT NOT NULL,
				staff TEXT NOT NULL,
				satisfaction INTEGER NOT NULL,
				pressed_at TEXT NOT NULL,
				due TEXT NOT NULL,
				created_ms BIGINT NOT NULL,
				closed_ms BIGINT,
				note TEXT NOT NULL DEFAULT '',
				alert TEXT NOT NULL,
				alert_sent_ms BIGINT
			)`,
			`CREATE INDEX followup_alert ON followup (alert_sent_ms)`,
		)
	},
	// 2: verification state of records, device keys, conflicting copies.
	migrateTrust,
	// 3: the audit of explicit case updates.
	func(tx *sql.Tx, d dialect) error {
		return execAll(tx, d,
			`CREATE TABLE case_change (
				id `+d.serial+`,
				project_no TEXT NOT NULL,
				changed_ms BIGINT NOT NULL,
				changed_by TEXT NOT NULL,
				old_case TEXT NOT NULL,
				new_case TEXT NOT NULL
			)`,
			`CREATE INDEX case_change_no ON case_change (project_no, id)`,
		)
	},
	// 4: messages parked by ingest.
	migrateParked,
	// 5: ticket sources, the join by counter and time, the SQL poller.
	migrateTicketSources,
	// 6: ranks of copies (a verified record wins), evidence kept with
	// its trust state, the first key each device announced.
	migrateRanks,
	// 7: reasons for a 差评 (reason records, and the reason of a rating).
	migrateReasons,
	// 8: alerts are leased while published and marked sent after the
	// broker's PUBACK.
	func(tx *sql.Tx, d dialect) error {
		return execAll(tx, d, `ALTER TABLE followup ADD COLUMN alert_lease_ms BIGINT NOT NULL DEFAULT 0`)
	},
	// 9: records stored and not yet written to their collector's export
	// file (--out), kept in the same commit as the record.
	func(tx *sql.Tx, d dialect) error {
		return execAll(tx, d, `CREATE TABLE export_pending (
				owner TEXT NOT NULL,
				rating_id TEXT NOT NULL,
				PRIMARY KEY (owner, rating_id)
			)`)
	},
}

func execAll(tx *sql.Tx, d dialect, stmts ...string) error {
	for _, s := range stmts {
		if _, err := tx.Exec(d.q(s)); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// migrate applies the migrations the database does not have yet, each in
// its own transaction. Collectors started side by side on one PostgreSQL
// database take turns through an advisory lock.
func migrate(ctx context.Context, db *sql.DB, d dialect) (int, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if d.postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(726100001)`); err != nil {
			return 0, fmt.Errorf("migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(726100001)`) //nolint:errcheck // the lock also ends with the connection
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate: create schema_version: %w", err)
	}
	var have int
	err = conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return 0, fmt.Errorf("migrate: init schema_version: %w", err)
		}
	case err != nil:
		return 0, fmt.Errorf("migrate: read schema_version: %w", err)
	}
	if have > len(migrations) {
		return have, fmt.Errorf("migrate: database schema version %d is newer than this collector knows (%d)", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return v, fmt.Errorf("migrate to %d: %w", v+1, err)
		}
		if err := migrations[v](tx, d); err != nil {
			tx.Rollback()
			return v, fmt.Errorf("migrate to %d: %w", v+1, err)
		}
		if _, err := tx.Exec(d.q(`UPDATE schema_version SET version = ?`), v+1); err != nil {
			tx.Rollback()
			return v, fmt.Errorf("migrate to %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return v, fmt.Errorf("migrate to %d: commit: %w", v+1, err)
		}
	}
	return len(migrations), nil
}
