package ingest

import (
	"bytes"
	"context"
	"testing"

	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/record"
)

// FuzzIngestRecordPostgres hands arbitrary bytes, published on a rating
// topic, to the ingester storing into a real PostgreSQL (which refuses NUL
// and invalid UTF-8 in text, and numbers past their columns): Handle never
// fails, so no payload can stop ingest; a record the decoder accepts is
// stored (or known already); any other is refused or parked; and the
// database never refuses what the field rules let through.
func FuzzIngestRecordPostgres(f *testing.F) {
	f.Add(press(f, "w05-a", "e1", 1))
	f.Add(bytes.Replace(press(f, "w05-a", "e1", 2), []byte(`"S017"`), []byte(`"a\u0000b"`), 1))
	f.Add(bytes.Replace(press(f, "w05-a", "e1", 3), []byte(`"S017"`), []byte("\"S\xff017\""), 1))
	f.Add(bytes.Replace(press(f, "w05-a", "e1", 4), []byte(`"button": 1`), []byte(`"button": 3000000000`), 1))
	f.Add(bytes.Replace(press(f, "w05-a", "e1", 5), []byte(`"seq": 5`), []byte(`"seq": 18446744073709551615`), 1))
	db := storetest.Postgres(f, &pg)
	in, _ := newIngester(f, db, nil)
	f.Fuzz(func(t *testing.T, payload []byte) {
		before := in.Stats()
		if err := in.Handle(context.Background(), []Message{{Topic: prefix + "/h1/W05/rating", Payload: payload}}); err != nil {
			t.Fatalf("ingest stopped by %q: %v", payload, err)
		}
		after := in.Stats()
		if after.DBRefused != before.DBRefused {
			t.Fatalf("the rules let through a record PostgreSQL refuses: %q", payload)
		}
		kept := after.Stored + after.Duplicates - before.Stored - before.Duplicates
		refused := after.Refused + after.Malformed - before.Refused - before.Malformed
		if _, err := record.DecodePress(payload); err == nil {
			if kept != 1 {
				t.Fatalf("accepted record not stored: %q (stats %+v)", payload, after)
			}
		} else if refused != 1 {
			t.Fatalf("refused record not counted: %q: %v", payload, err)
		}
	})
}
