package store

import (
	"database/sql"
)

// Join states and reasons of the join by counter and time.
const (
	// Ambiguous: several cases of the rating's counter hold its time; the
	// duty manager assigns it to one (POST /api/v1/ratings/{id}/assign).
	Ambiguous = "ambiguous"

	// ReasonNoCase: no case of its ticket, nor of its counter and time,
	// within the match window.
	ReasonNoCase = "no_case"
	// ReasonClockUnsynced: pressed with the clock not synchronised and
	// not repaired from a later synchronised record of the same boot, so
	// its time could not be trusted for a join by time.
	ReasonClockUnsynced = "clock_not_synced"
)

// migrateTicketSources adds what the ticket sources and the join by counter
// and time keep: each rating's ticket source, boot and uptime (to repair
// its time), why a rating stayed unmatched, the candidates of an ambiguous
// rating, who assigned it, and the SQL poller's cursors.
func migrateTicketSources(tx *sql.Tx, d dialect) error {
	return execAll(tx, d,
		`ALTER TABLE rating ADD COLUMN ticket_source TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN boot_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN uptime_ms BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE rating ADD COLUMN join_reason TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN assigned_by TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN assigned_ms BIGINT`,
		`CREATE INDEX rating_boot ON rating (device, boot_id)`,
		`CREATE INDEX hcase_counter_time ON hcase (hall, counter, accepted_ms)`,
		`CREATE TABLE rating_candidate (
			rating_id TEXT NOT NULL,
			project_no TEXT NOT NULL,
			PRIMARY KEY (rating_id, project_no)
		)`,
		`CREATE TABLE ticket_cursor (
			name TEXT PRIMARY KEY,
			cursor TEXT NOT NULL,
			updated_ms BIGINT NOT NULL
		)`,
	)
}
