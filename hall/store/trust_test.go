package store_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

// signedChain returns n signed, chained ratings of w05-a, stored verified.
func signedChain(key ed25519.PrivateKey, n int) []store.Rating {
	var out []store.Rating
	prev := ""
	for i := 1; i <= n; i++ {
		r := rating("w05-a", "e1", uint64(i), 5, "A1")
		r.Prev = prev
		r.Sign(key)
		prev = r.ChainHash()
		r.Raw, _ = json.Marshal(r.Press)
		r.Trust = store.TrustVerified
		out = append(out, r)
	}
	return out
}

func save(t *testing.T, db *store.DB, rs ...store.Rating) store.Saved {
	t.Helper()
	s, err := db.SaveBatch(context.Background(), store.Batch{Ratings: rs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func trustOf(t *testing.T, db *store.DB) map[int64]store.StoredRating {
	t.Helper()
	rs, err := db.Ratings(context.Background(), store.RatingFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]store.StoredRating{}
	for _, r := range rs {
		out[r.Seq] = r
	}
	return out
}

func TestChainCheckedInAnyOrder(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		_, key, _ := ed25519.GenerateKey(nil)
		rs := signedChain(key, 6)
		// In order, then out of order (5 before 4), then again: all hold.
		save(t, db, rs[0], rs[1])
		save(t, db, rs[2])
		save(t, db, rs[4])
		s := save(t, db, rs[3], rs[1])
		if len(s.Trust) != 0 {
			t.Fatalf("good chain flagged: %+v", s.Trust)
		}
		// A forged seq 6 (another key), pressed in the name of w05-a: its
		// prev is not the hash of seq 5.
		forged := rs[5]
		forged.Satisfaction, forged.Prev = 1, "00"
		_, other, _ := ed25519.GenerateKey(nil)
		forged.Sign(other)
		forged.Raw, _ = json.Marshal(forged.Press)
		s = save(t, db, forged)
		if len(s.Trust) != 1 || s.Trust[0].Kind != store.ReasonChainBreak || s.Trust[0].ID != forged.ID ||
			s.New[0].Trust != store.TrustFlagged || !s.New[0].Hold {
			t.Fatalf("forged seq 6: %+v %+v", s.Trust, s.New)
		}
		got := trustOf(t, db)
		if got[6].Trust != store.TrustFlagged || got[6].TrustReason != "chain_break" || got[6].JoinState != store.Excluded {
			t.Fatalf("seq 6 stored as %+v", got[6])
		}
		for seq := int64(1); seq <= 5; seq++ {
			if got[seq].Trust != store.TrustVerified || got[seq].JoinState != store.Waiting {
				t.Fatalf("seq %d: %+v", seq, got[seq])
			}
		}
	})
}

func TestChainBreakFoundWhenPredecessorArrivesLate(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		_, key, _ := ed25519.GenerateKey(nil)
		rs := signedChain(key, 3)
		// Seq 3 arrives first; then a seq 2 that is not the one seq 3
		// follows (a fork): the stored seq 3 is flagged.
		save(t, db, rs[0], rs[2])
		fork := rs[1]
		fork.Satisfaction = 1
		fork.Sign(key)
		fork.Raw, _ = json.Marshal(fork.Press)
		s := save(t, db, fork)
		if len(s.Trust) != 1 || s.Trust[0].ID != rs[2].ID || s.Trust[0].JoinState != store.Waiting {
			t.Fatalf("events %+v", s.Trust)
		}
		got := trustOf(t, db)
		if got[3].Trust != store.TrustFlagged || got[3].JoinState != store.Excluded || got[2].Trust != store.TrustVerified {
			t.Fatalf("stored %+v", got)
		}
		// Found twice, recorded once.
		if _, err := db.SaveBatch(context.Background(), store.Batch{Ratings: []store.Rating{fork}}); err != nil {
			t.Fatal(err)
		}
		if r := trustOf(t, db)[3]; r.TrustReason != "chain_break" {
			t.Fatalf("reason %q", r.TrustReason)
		}
	})
}

func TestConflictingCopyKeptAside(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		_, key, _ := ed25519.GenerateKey(nil)
		rs := signedChain(key, 2)
		save(t, db, rs...)
		// The same id again, byte for byte: a duplicate, nothing flagged.
		if s := save(t, db, rs[1]); len(s.Trust) != 0 || len(s.New) != 0 {
			t.Fatalf("duplicate: %+v", s)
		}
		other := rs[1]
		other.Satisfaction = 1
		other.Raw, _ = json.Marshal(other.Press)
		s := save(t, db, other)
		if len(s.Trust) != 1 || s.Trust[0].Kind != store.ReasonConflict {
			t.Fatalf("conflict: %+v", s.Trust)
		}
		got := trustOf(t, db)[2]
		if got.Trust != store.TrustFlagged || got.TrustReason != "conflict" || got.Satisfaction != 5 {
			t.Fatalf("stored %+v", got)
		}
		cs, err := db.Conflicts(context.Background(), 10)
		if err != nil || len(cs) != 1 || cs[0].RatingID != other.ID || cs[0].Raw != string(other.Raw) {
			t.Fatalf("conflicts %+v %v", cs, err)
		}
	})
}

func TestTrustStateStoredAndCounted(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub, key, _ := ed25519.GenerateKey(nil)
		rs := signedChain(key, 4)
		rs[1].Trust, rs[1].TrustReason, rs[1].Hold = store.TrustUnverified, "no_trusted_key,tofu", true
		rs[2].Trust, rs[2].TrustReason, rs[2].Hold = store.TrustFlagged, "bad_signature", true
		rs[3].Trust, rs[3].TrustReason, rs[3].Disposition = store.TrustFlagged, "wrong_counter", record.Late
		rs[3].Raw, _ = json.Marshal(rs[3].Press)
		if err := db.SaveInventory(ctx, []store.DeviceKey{{Device: "w05-a", Hall: "h1", Counter: "W05", Key: record.EncodePublicKey(pub)}}); err != nil {
			t.Fatal(err)
		}
		other, _, _ := ed25519.GenerateKey(nil)
		last := uint64(4)
		if _, err := db.SaveBatch(ctx, store.Batch{Ratings: rs, Statuses: []store.StatusUpdate{{Hall: "h1", Counter: "W05",
			Status: record.Status{V: 1, Online: true, Device: "w05-a", Epoch: "e1", LastSeq: &last, PubKey: record.EncodePublicKey(other)}}}}); err != nil {
			t.Fatal(err)
		}
		got := trustOf(t, db)
		if got[1].JoinState != store.Waiting || got[2].JoinState != store.Excluded || got[3].JoinState != store.Excluded ||
			got[4].JoinState != "" || got[2].TrustReason != "no_trusted_key,tofu" {
			t.Fatalf("join states %+v", got)
		}
		flagged, err := db.Ratings(ctx, store.RatingFilter{Trust: store.TrustFlagged})
		if err != nil || len(flagged) != 2 {
			t.Fatalf("flagged %+v %v", flagged, err)
		}
		a, err := db.Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Trust) != 1 || a.Trust[0] != (store.CounterTrust{Hall: "h1", Counter: "W05", Verified: 1, Unverified: 1, TOFU: 1,
			Flagged: 2, LastFlaggedMS: 1000}) {
			t.Fatalf("trust by counter %+v", a.Trust)
		}
		d := a.Devices[0]
		if d.TrustedKey != record.EncodePublicKey(pub) || d.PubKey != record.EncodePublicKey(other) || !d.KeyMismatch || d.Assigned != "h1/W05" {
			t.Fatalf("device %+v", d)
		}
		fig, err := db.Figures(ctx, store.FigureQuery{FromMS: 0, ToMS: 1 << 62})
		var n4 int64
		for _, r := range fig.Rows {
			n4 += r.N
		}
		if err != nil || n4 != 4 {
			t.Fatalf("figures %+v %v", fig.Rows, err)
		}
		n := 0
		if err := db.EachRecord(ctx, func(r store.StoredRecord) error {
			n++
			if _, err := record.DecodePress(r.Raw); err != nil || r.Seq != int64(n) {
				t.Fatalf("record %d: %v %+v", n, err, r)
			}
			return nil
		}); err != nil || n != 4 {
			t.Fatalf("each record: %d %v", n, err)
		}
		// A device dropped from the inventory loses its trusted key.
		if err := db.SaveInventory(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if a, _ := db.Audit(ctx); a.Devices[0].TrustedKey != "" || a.Devices[0].KeyMismatch {
			t.Fatalf("after inventory change %+v", a.Devices[0])
		}
	})
}
