package tickets

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/go-sql-driver/mysql" // driver "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/jonboulle/clockwork"

	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/hallrate/hallrate/record"
)

// CursorStore keeps the poller's cursor across restarts (the collector's
// store).
type CursorStore interface {
	TicketCursor(ctx context.Context, name string) (string, bool, error)
	SaveTicketCursor(ctx context.Context, name, cursor string, nowMS int64) error
}

// Publishing is what the poller asks of a [Gateway].
type Publishing interface {
	Publish(ctx context.Context, counter string, body []byte, via string) (record.Ticket, error)
}

// PollConfig configures a [Poller].
type PollConfig struct {
	// Driver is "postgres" or "mysql"; DSN the database in that driver's
	// form.
	Driver, DSN string
	// Query returns the rows newer than its one parameter, the cursor, in
	// the order they happened, with the columns cursor, counter, ticket,
	// state, staff, item, at and optionally projectNo.
	Query    string
	Interval time.Duration
	// CursorStart is the cursor before the first row.
	CursorStart string
	Cursors     CursorStore
	Gateway     Publishing
	Logger      *slog.Logger
	Clock       clockwork.Clock
}

// cursorName is the poller's key in the cursor store.
const cursorName = "sql"

// maxRows bounds the rows one poll publishes.
const maxRows = 1000

// Poller turns the new rows of a queue system's table into tickets.
type Poller struct {
	cfg  PollConfig
	log  *slog.Logger
	db   *sql.DB
	cur  string
	have bool

	published, refused atomic.Int64
}

// PollStats are the poller's counts.
type PollStats struct{ Published, Refused int64 }

// Stats returns the counts.
func (p *Poller) Stats() PollStats { return PollStats{p.published.Load(), p.refused.Load()} }

// NewPoller opens the queue system's database; nothing is queried until
// [Poller.Run].
func NewPoller(cfg PollConfig) (*Poller, error) {
	driver := cfg.Driver
	switch driver {
	case "postgres":
		driver = "pgx"
	case "mysql":
	default:
		return nil, fmt.Errorf("tickets: sql driver %q is neither postgres nor mysql", cfg.Driver)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	db, err := sql.Open(driver, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("tickets: open %s database: %w", cfg.Driver, err)
	}
	db.SetMaxOpenConns(2)
	return &Poller{cfg: cfg, log: cfg.Logger, db: db}, nil
}

// stopGrace bounds how long a publish under way may take to finish once
// the collector is stopping.
const stopGrace = 5 * time.Second

// Close closes the database.
func (p *Poller) Close() error { return p.db.Close() }

// Run polls every interval until ctx ends. A failed poll is logged (the
// first ones, then every hundredth) and tried again from the same cursor.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	failures := 0
	for {
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			failures++
			if throttle.Failures().Log(int64(failures)) {
				p.log.Warn("ticket poll failed; trying again from the same row", "err", err, "failures", failures)
			}
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll publishes the rows newer than the cursor, in order, moving the
// cursor past each one the broker acknowledged, or that was refused for a
// field (logged and counted: it never holds back the rows after it). It
// stops at the first row it could not publish, to try it again.
func (p *Poller) Poll(ctx context.Context) error {
	if !p.have {
		c, ok, err := p.cfg.Cursors.TicketCursor(ctx, cursorName)
		if err != nil {
			return err
		}
		p.cur, p.have = p.cfg.CursorStart, true
		if ok {
			p.cur = c
		}
	}
	rows, err := p.db.QueryContext(ctx, p.cfg.Query, p.cur)
	if err != nil {
		return fmt.Errorf("tickets: query: %w", err)
	}
	type row struct {
		cursor, counter string
		body            []byte
	}
	var todo []row
	cols, err := rows.Columns()
	if err == nil {
		for len(todo) < maxRows && rows.Next() {
			var r row
			r.cursor, r.counter, r.body, err = scanRow(rows, cols)
			if err != nil {
				break
			}
			todo = append(todo, r)
		}
	}
	if err == nil {
		err = rows.Err()
	}
	rows.Close()
	if err != nil {
		return fmt.Errorf("tickets: read rows: %w", err)
	}
	for _, r := range todo {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A publish under way when the collector stops is finished, not
		// abandoned: the broker may already have it, and a cursor left
		// behind it would publish the row again after the restart.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
		_, err := p.cfg.Gateway.Publish(pctx, r.counter, r.body, ViaSQL)
		cancel()
		var fe *FieldError
		switch {
		case errors.As(err, &fe):
			p.refused.Add(1)
			p.log.Warn("queue system row refused; skipped", "cursor", r.cursor, "counter", r.counter, "field", fe.Field, "err", fe)
		case err != nil:
			return err
		default:
			p.published.Add(1)
		}
		// Published is published: the cursor moves past the row even when
		// the collector is stopping.
		if err := p.cfg.Cursors.SaveTicketCursor(context.WithoutCancel(ctx), cursorName, r.cursor, p.cfg.Clock.Now().UnixMilli()); err != nil {
			return err
		}
		p.cur = r.cursor
	}
	return nil
}

// scanRow reads one row into its cursor, counter and ticket message. Every
// column is read as text: a timestamp column arrives as RFC 3339 (with the
// offset of the driver's time zone).
func scanRow(rows *sql.Rows, cols []string) (string, string, []byte, error) {
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", "", nil, err
	}
	f := map[string]string{}
	for i, c := range cols {
		f[strings.ToLower(c)] = vals[i].String
	}
	cursor, ok := f["cursor"]
	if !ok {
		return "", "", nil, errors.New("sql_query has no column named cursor")
	}
	if _, ok := f["counter"]; !ok {
		return "", "", nil, errors.New("sql_query has no column named counter")
	}
	msg := map[string]any{"v": record.Version, "ticket": f["ticket"], "state": f["state"], "staff": f["staff"],
		"item": f["item"], "at": f["at"]}
	if p := f["projectno"]; p != "" {
		msg["projectNo"] = p
	}
	if msg["state"] == string(record.Idle) && f["ticket"] == "" {
		delete(msg, "ticket")
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return "", "", nil, err
	}
	return cursor, f["counter"], body, nil
}
