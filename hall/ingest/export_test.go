package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tornSink stands for a collector killed while writing its records file:
// half of the first line reaches the file, nothing more.
type tornSink struct{ path string }

func (s tornSink) Append(records [][]byte) error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(records[0][:len(records[0])/2]); err != nil {
		return err
	}
	return errors.New("killed")
}

func (tornSink) Each(func([]byte) error) error { return nil }

// TestExportAfterCrash: records committed to the store whose line in the
// records file was cut off by a crash are written when the collector
// starts again, although the broker then delivers them as duplicates; the
// file ends with each record once.
func TestExportAfterCrash(t *testing.T) {
	db := openStore(t)
	path := filepath.Join(t.TempDir(), "records.jsonl")
	ingester := func(export Sink) *Ingester {
		sh, _ := time.LoadLocation("Asia/Shanghai")
		in, err := New(Config{Prefix: prefix, Store: db, Export: export, Exports: db, ExportOwner: "c1", Location: sh})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	crashed := ingester(tornSink{path})
	handle(t, crashed, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 2))

	j, err := OpenJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Repaired == 0 {
		t.Fatal("the torn line was not cut off")
	}
	in := ingester(j)
	n, err := in.ReplayExports(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("replayed %d, %v; want 2", n, err)
	}
	// The broker delivers both again (never acknowledged), then a new one.
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 2))
	handle(t, in, rating(t, "w05-a", "e1", 3))
	if n, err := in.ReplayExports(context.Background()); err != nil || n != 0 {
		t.Fatalf("second replay: %d, %v", n, err)
	}
	b, _ := os.ReadFile(path)
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var p struct{ ID string }
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, " ") != "w05-a:e1:1 w05-a:e1:2 w05-a:e1:3" {
		t.Fatalf("records file holds %v", ids)
	}
	if p, err := db.PendingExports(context.Background(), "c1", 0); err != nil || len(p) != 0 {
		t.Fatalf("still pending: %+v, %v", p, err)
	}
}
