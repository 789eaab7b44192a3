package esup

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// publisher records what it publishes; while hang is set, a Publish never
// returns, as in a collector killed before the PUBACK.
type publisher struct {
	mu     sync.Mutex
	hang   bool
	topics []string
	called chan struct{}
}

func (p *publisher) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	p.mu.Lock()
	hang := p.hang
	p.topics = append(p.topics, topic)
	p.mu.Unlock()
	if hang {
		close(p.called)
		select {} // this "process" is dead: nothing after this point runs
	}
	return nil
}

// TestAlertSurvivesCrashBeforePUBACK: a collector that dies after claiming
// a 差评's alert and before the broker acknowledged it (kill -9 in the
// middle of the publish) loses no alert: once the lease runs out another
// collector publishes it, and marks it sent then.
func TestAlertSurvivesCrashBeforePUBACK(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.DB{"sqlite": openSQLite, "postgres": openPG} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			p := record.Press{V: 1, ID: record.PressID("w05-a", "e1", 1), Device: "w05-a", Hall: "h1", Counter: "W05",
				Epoch: "e1", Seq: 1, Button: 4, Label: "x", Satisfaction: 1, Disposition: record.Counted,
				PressedAt: "2026-11-24T09:15:03.123+08:00", ClockSynced: true}
			r := store.Rating{Press: p, Raw: []byte("{}"), PressedMS: 1, ServiceDay: "2026-11-24", StoredMS: 1,
				Followup: &store.Followup{Hall: "h1", Counter: "W05", Satisfaction: 1, PressedAt: p.PressedAt,
					Due: "2026-12-03", CreatedMS: 1, Alert: []byte(`{"v":1,"kind":"bad_rating"}`)}}
			if _, err := db.SaveBatch(ctx, store.Batch{Ratings: []store.Rating{r}}); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			clock := func() time.Time { return now }
			log := slog.New(slog.DiscardHandler)
			dead := &publisher{hang: true, called: make(chan struct{})}
			crashed := &Alerter{Store: db, Publisher: dead, Prefix: "hallrate/v1", Logger: log, Clock: testenv.ClockFunc(clock), Lease: 30 * time.Second}
			go crashed.Once(ctx) //nolint:errcheck // never returns: the collector was killed
			<-dead.called

			live := &publisher{}
			other := &Alerter{Store: db, Publisher: live, Prefix: "hallrate/v1", Logger: log, Clock: testenv.ClockFunc(clock), Lease: 30 * time.Second}
			if err := other.Once(ctx); err != nil || other.Sent() != 0 {
				t.Fatalf("an alert under another's lease was published: sent %d, %v", other.Sent(), err)
			}
			now = now.Add(31 * time.Second)
			if err := other.Once(ctx); err != nil || other.Sent() != 1 || len(live.topics) != 1 || live.topics[0] != "hallrate/v1/h1/alert" {
				t.Fatalf("alert after the lease: sent %d, topics %v, %v", other.Sent(), live.topics, err)
			}
			now = now.Add(time.Hour)
			if err := other.Once(ctx); err != nil || other.Sent() != 1 {
				t.Fatalf("an alert marked sent was published again: sent %d, %v", other.Sent(), err)
			}
		})
	}
}
