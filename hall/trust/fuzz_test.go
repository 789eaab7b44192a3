package trust

import (
	"encoding/json"
	"testing"

	"github.com/hallrate/hallrate/record"
)

// FuzzDecodeRecord feeds the collector's record decoder and checks
// arbitrary bytes: it never panics, and a record it calls verified
// verifies under the trusted key and stays verified when encoded and
// decoded again. The seed corpus is in testdata/fuzz/FuzzDecodeRecord.
func FuzzDecodeRecord(f *testing.F) {
	pub, key := seededKey(1)
	for _, r := range chain(key, "9f2c41d7", 2) {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	inv := inventory(f, pub)
	f.Fuzz(func(t *testing.T, line []byte) {
		a := NewAuditor(inv)
		a.AddLine(line, "line 1")
		rep := a.Report(map[string]End{"w05-a": {"9f2c41d7", 3}})
		p, err := record.DecodePress(line)
		if err != nil {
			if rep.Malformed != 1 {
				t.Fatalf("undecodable line not counted malformed: %+v", rep)
			}
			return
		}
		v := Check(inv, &p, pub)
		if v.State != Verified {
			return
		}
		if err := p.Verify(pub); err != nil {
			t.Fatalf("verified but the signature fails: %v", err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := record.DecodePress(again)
		if err != nil {
			t.Fatalf("verified record does not decode again: %v\n%s", err, again)
		}
		if w := Check(inv, &q, pub); w.State != Verified || q.Canonical() != p.Canonical() {
			t.Fatalf("re-encoded record: %s %v", w.State, w.Reasons)
		}
	})
}
