package ingest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/internal/pgtest"
)

// pg is this test binary's PostgreSQL, started by TestMain.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

// benchIngest stores b.N records in deliveries of 256, as the link hands
// them over, and reports records per second.
func benchIngest(b *testing.B, db *store.DB) {
	in, _ := newIngester(b, db, nil)
	const batch = 256
	msgs := make([]Message, 0, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := uint64(i + 1)
		dev := fmt.Sprintf("w%02d-a", i%20)
		msgs = append(msgs, Message{Topic: prefix + "/h1/W05/rating", Payload: pressOf(b, dev, "e1", seq, 5-i%5)})
		if len(msgs) == batch || i == b.N-1 {
			if err := in.Handle(context.Background(), msgs); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if s := in.Stats(); s.Stored != int64(b.N) {
		b.Fatalf("stored %d of %d", s.Stored, b.N)
	}
}

func BenchmarkIngestSQLite(b *testing.B) { benchIngest(b, openStore(b)) }

func BenchmarkIngestPostgres(b *testing.B) { benchIngest(b, storetest.Postgres(b, &pg)) }

func TestIngestPostgres(t *testing.T) {
	db := storetest.Postgres(t, &pg)
	in, r := newIngester(t, db, nil)
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 3))
	handle(t, in, rating(t, "w05-a", "e1", 2))
	if s := in.Stats(); s.Stored != 3 || s.Duplicates != 1 || len(r.events) != 2 {
		t.Fatalf("stats %+v events %+v", s, r.events)
	}
}
