package tickets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/internal/mariadbtest"
	"github.com/hallrate/hallrate/internal/pgtest"
	"github.com/hallrate/hallrate/record"
)

var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

// recorder stands for the broker: it keeps what was published, in order,
// or refuses while down.
type recorder struct {
	mu     sync.Mutex
	down   bool
	topics []string
	bodies []string
}

func (r *recorder) Publish(_ context.Context, topic string, payload []byte, retained bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down || !retained {
		return errors.New("no PUBACK")
	}
	r.topics = append(r.topics, topic)
	r.bodies = append(r.bodies, string(payload))
	return nil
}

func (r *recorder) tickets(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for i, b := range r.bodies {
		tk, err := record.DecodeTicket([]byte(b))
		if err != nil {
			t.Fatalf("published a ticket the agent refuses: %v: %s", err, b)
		}
		counter := strings.Split(r.topics[i], "/")[3]
		out = append(out, counter+":"+tk.Ticket+":"+string(tk.State))
	}
	return out
}

// queueDB is a queue system's table of calls in one of the two databases.
type queueDB struct {
	driver, dsn, query string
	db                 *sql.DB
	insert             string
}

func (q queueDB) add(t *testing.T, counter, ticket, state string, at time.Time) {
	t.Helper()
	if _, err := q.db.Exec(q.insert, counter, ticket, state, "S1", "licence", at); err != nil {
		t.Fatal(err)
	}
}

func postgresQueue(t *testing.T) queueDB {
	dsn := pg.Need(t).NewDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE calls (id BIGSERIAL PRIMARY KEY, window_no TEXT NOT NULL, ticket_no TEXT NOT NULL,
		status TEXT NOT NULL, staff_no TEXT NOT NULL, item TEXT NOT NULL, called_at TIMESTAMPTZ NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return queueDB{driver: "postgres", dsn: dsn, db: db,
		query: `SELECT id AS cursor, window_no AS counter, ticket_no AS ticket, status AS state, staff_no AS staff, item,
			to_char(called_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS at
			FROM calls WHERE id > $1::bigint ORDER BY id LIMIT 100`,
		insert: `INSERT INTO calls (window_no, ticket_no, status, staff_no, item, called_at) VALUES ($1, $2, $3, $4, $5, $6)`}
}

func mariadbQueue(t *testing.T) queueDB {
	m := mariadbtest.Start(t)
	dsn := m.NewDatabase(t, "queue")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE calls (id BIGINT AUTO_INCREMENT PRIMARY KEY, window_no VARCHAR(16) NOT NULL,
		ticket_no VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, staff_no VARCHAR(16) NOT NULL,
		item VARCHAR(64) NOT NULL, called_at DATETIME NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return queueDB{driver: "mysql", dsn: dsn, db: db,
		// CURSOR is a reserved word in MySQL and MariaDB: quote it.
		query: "SELECT id AS `cursor`, window_no AS counter, ticket_no AS ticket, status AS state, staff_no AS staff, item, " +
			"called_at AS at FROM calls WHERE id > ? ORDER BY id LIMIT 100",
		insert: `INSERT INTO calls (window_no, ticket_no, status, staff_no, item, called_at) VALUES (?, ?, ?, ?, ?, ?)`}
}

// TestPollerRowsBecomeTickets: rows of a real PostgreSQL and a real
// MariaDB table become tickets in order; a refused row is skipped and
// counted; with the broker away nothing is skipped; a restart (a new
// poller on the same collector store) neither replays nor skips a row.
func TestPollerRowsBecomeTickets(t *testing.T) {
	for name, open := range map[string]func(*testing.T) queueDB{"postgres": postgresQueue, "mariadb": mariadbQueue} {
		t.Run(name, func(t *testing.T) {
			q := open(t)
			ctx := context.Background()
			cursors := storetest.SQLite(t)
			rec := &recorder{}
			gw := NewGateway(Config{Prefix: "hallrate/v1", Hall: "h1", Publisher: rec})
			sh, _ := time.LoadLocation("Asia/Shanghai")
			at := time.Date(2026, 11, 24, 9, 15, 0, 0, sh)
			newPoller := func() *Poller {
				p, err := NewPoller(PollConfig{Driver: q.driver, DSN: q.dsn, Query: q.query, Interval: time.Second,
					CursorStart: "0", Cursors: cursors, Gateway: gw})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				return p
			}
			q.add(t, "W05", "A001", "serving", at)
			q.add(t, "W06", "B001", "serving", at.Add(time.Second))
			q.add(t, "W05", "A001", "done", at.Add(time.Minute))
			q.add(t, "W05", "A002", "paused", at.Add(2*time.Minute)) // refused: state
			q.add(t, "W06", "B001", "done", at.Add(3*time.Minute))
			p := newPoller()
			if err := p.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			want := []string{"W05:A001:serving", "W06:B001:serving", "W05:A001:done", "W06:B001:done"}
			if got := rec.tickets(t); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("tickets %v, want %v", got, want)
			}
			if s := p.Stats(); s.Published != 4 || s.Refused != 1 {
				t.Fatalf("stats %+v", s)
			}
			if !strings.Contains(rec.bodies[0], `"at":"2026-11-24T09:15:00+08:00"`) {
				t.Fatalf("at not carried as RFC 3339 with the offset: %s", rec.bodies[0])
			}
			// Nothing new: nothing published again.
			if err := p.Poll(ctx); err != nil || len(rec.tickets(t)) != 4 {
				t.Fatalf("second poll: %v, %d tickets", err, len(rec.tickets(t)))
			}
			// The broker goes away: the row is not skipped.
			q.add(t, "W07", "C001", "done", at.Add(4*time.Minute))
			rec.mu.Lock()
			rec.down = true
			rec.mu.Unlock()
			if err := p.Poll(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("poll with the broker away: %v", err)
			}
			rec.mu.Lock()
			rec.down = false
			rec.mu.Unlock()
			// A restart: a new poller takes the cursor from the store.
			q.add(t, "W05", "A003", "serving", at.Add(5*time.Minute))
			p2 := newPoller()
			if err := p2.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			want = append(want, "W07:C001:done", "W05:A003:serving")
			if got := rec.tickets(t); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after a restart: %v, want %v", got, want)
			}
			c, ok, err := cursors.TicketCursor(ctx, "sql")
			if err != nil || !ok || c != "7" {
				t.Fatalf("stored cursor %q %v %v, want 7", c, ok, err)
			}
		})
	}
}

var _ CursorStore = (*store.DB)(nil)
