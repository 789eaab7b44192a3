package store_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

// forgery is a copy of r's id with satisfaction 1 that failed its own
// checks: another key's signature.
func forgery(t *testing.T, r store.Rating) store.Rating {
	t.Helper()
	_, other, _ := ed25519.GenerateKey(nil)
	f := r
	tk := *r.Ticket
	f.Ticket = &tk
	f.Satisfaction, f.Prev = 1, "00"
	f.Sign(other)
	f.Raw, _ = json.Marshal(f.Press)
	f.Trust, f.TrustReason, f.Hold, f.Rank = store.TrustFlagged, "bad_signature", true, store.RankFlagged
	return f
}

// unsigned is a copy of r's id that nothing proves: no signature, no key.
func unsigned(r store.Rating, sat int) store.Rating {
	u := r
	tk := *r.Ticket
	u.Ticket = &tk
	u.Satisfaction, u.Prev, u.Sig, u.SigV = sat, "", "", 0
	u.Raw, _ = json.Marshal(u.Press)
	u.Trust, u.TrustReason, u.Hold, u.Rank = store.TrustUnverified, "no_trusted_key", false, store.RankUnproven
	return u
}

func conflicts(t *testing.T, db *store.DB) []store.Conflict {
	t.Helper()
	cs, err := db.Conflicts(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestVerifiedCopyWins: a forged copy of a future seq stored first is
// replaced by the genuine record when it arrives, which takes the join,
// the chain and the follow-up; the forgery is kept as displaced evidence.
// A forgery arriving second changes nothing but the evidence.
func TestVerifiedCopyWins(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		_, key, _ := ed25519.GenerateKey(nil)
		rs := signedChain(key, 6)
		rs[4].Satisfaction = 2 // the genuine seq 5 is a 差评
		rs[4].Sign(key)
		rs[5].Prev = rs[4].ChainHash()
		rs[5].Sign(key)
		for i := range rs {
			rs[i].Raw, _ = json.Marshal(rs[i].Press)
		}
		rs[4].Followup = &store.Followup{Hall: "h1", Counter: "W05", Ticket: "A1", Satisfaction: 2, Due: "2026-11-26", Alert: []byte(`{}`)}
		save(t, db, rs[:4]...)
		forged := forgery(t, rs[4])
		if s := save(t, db, forged); len(s.New) != 1 || s.New[0].Trust != store.TrustFlagged {
			t.Fatalf("forgery stored as %+v", s.New)
		}
		// The genuine seq 6 before seq 5: its link to the stored (forged)
		// seq 5 breaks, for now.
		if s := save(t, db, rs[5]); len(s.Trust) != 1 || s.Trust[0].Kind != store.ReasonChainBreak {
			t.Fatalf("seq 6 before the genuine seq 5: %+v", s.Trust)
		}
		s := save(t, db, rs[4])
		if len(s.New) != 0 || len(s.Replaced) != 1 || s.Replaced[0].ID != rs[4].ID || len(s.Trust) != 1 ||
			s.Trust[0].Kind != store.ReasonReplaced {
			t.Fatalf("genuine seq 5: %+v", s)
		}
		got := trustOf(t, db)
		for seq := int64(1); seq <= 6; seq++ {
			if got[seq].Trust != store.TrustVerified || got[seq].JoinState != store.Waiting || got[seq].TrustReason != "" {
				t.Fatalf("seq %d stored as %+v", seq, got[seq])
			}
		}
		if got[5].Satisfaction != 2 {
			t.Fatalf("seq 5 has satisfaction %d", got[5].Satisfaction)
		}
		cs := conflicts(t, db)
		if len(cs) != 1 || cs[0].Raw != string(forged.Raw) || !cs[0].Displaced || cs[0].Trust != store.TrustFlagged ||
			cs[0].TrustReason != "bad_signature,chain_break,conflict" || cs[0].PrevJoin != store.Excluded {
			t.Fatalf("evidence %+v", cs)
		}
		fs, err := db.Followups(context.Background(), true, 10)
		if err != nil || len(fs) != 1 || fs[0].RatingID != rs[4].ID {
			t.Fatalf("follow-ups %+v %v", fs, err)
		}
		// A forged replay arriving second: evidence only.
		late := forgery(t, rs[5])
		if s := save(t, db, late); len(s.Replaced) != 0 || len(s.Trust) != 1 || s.Trust[0].Kind != store.ReasonConflict {
			t.Fatalf("late forgery: %+v", s)
		}
		if r := trustOf(t, db)[6]; r.Trust != store.TrustVerified || r.Satisfaction != 5 || r.JoinState != store.Waiting {
			t.Fatalf("seq 6 after a late forgery: %+v", r)
		}
		if cs := conflicts(t, db); len(cs) != 2 || cs[0].Displaced || cs[0].TrustReason != "bad_signature,conflict" {
			t.Fatalf("evidence %+v", cs)
		}
	})
}

// TestSquattedSeqsGiveWay: unsigned records published ahead for seqs 5-7
// give way to the records signed by the device's first announced key (trust
// on first use), and seq 8 links to the genuine seq 7.
func TestSquattedSeqsGiveWay(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		_, key, _ := ed25519.GenerateKey(nil)
		rs := signedChain(key, 8)
		for i := range rs {
			rs[i].Trust, rs[i].TrustReason, rs[i].Rank = store.TrustUnverified, "no_trusted_key,tofu", store.RankTOFU
		}
		save(t, db, rs[:4]...)
		save(t, db, unsigned(rs[4], 1), unsigned(rs[5], 1), unsigned(rs[6], 1))
		if s := save(t, db, rs[4], rs[5]); len(s.Replaced) != 2 || len(s.Trust) != 2 {
			t.Fatalf("seqs 5-6: %+v", s)
		}
		if s := save(t, db, rs[7], rs[6], unsigned(rs[6], 2)); len(s.Replaced) != 1 || len(s.New) != 1 {
			t.Fatalf("seqs 7-8: %+v", s)
		}
		got := trustOf(t, db)
		for seq := int64(1); seq <= 8; seq++ {
			if got[seq].Trust != store.TrustUnverified || got[seq].TrustReason != "no_trusted_key,tofu" ||
				got[seq].Satisfaction != 5 || got[seq].JoinState != store.Waiting {
				t.Fatalf("seq %d stored as %+v", seq, got[seq])
			}
		}
		if cs := conflicts(t, db); len(cs) != 4 {
			t.Fatalf("evidence %+v", cs)
		}
	})
}

// TestReplacedAfterJoin: a copy joined before the verified one arrived has
// its evaluation withdrawn if it has not left (the verified one joins
// afresh), and is held for the duty manager if it has.
func TestReplacedAfterJoin(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, key, _ := ed25519.GenerateKey(nil)
		rs := signedChain(key, 2)
		for i := range rs {
			rs[i].Ticket.ProjectNo = "P" + string(rune('1'+i))
			rs[i].Sign(key)
			if i > 0 {
				rs[i].Prev = rs[i-1].ChainHash()
				rs[i].Sign(key)
			}
			rs[i].Raw, _ = json.Marshal(rs[i].Press)
		}
		save(t, db, unsigned(rs[0], 1), unsigned(rs[1], 1))
		for i, state := range []string{store.Held, store.Pending} {
			err := db.Join(ctx, func(tx *store.JoinTx) error {
				_, err := tx.AddEvaluation(store.Evaluation{RatingID: rs[i].ID, ProjectNo: rs[i].Ticket.ProjectNo, Hall: "h1",
					Counter: "W05", Ticket: "A1", Device: "w05-a", Satisfaction: "1", Payload: []byte(`{}`), State: state, CreatedMS: 1})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// The second one's evaluation has left: delivered.
		es, err := db.ClaimDue(ctx, "me", 10, 100, 10)
		if err != nil || len(es) != 1 {
			t.Fatalf("claim %+v %v", es, err)
		}
		if err := db.RecordOutcome(ctx, store.Outcome{RatingID: rs[1].ID, Owner: "me", State: store.Delivered, AtMS: 20}); err != nil {
			t.Fatal(err)
		}
		s := save(t, db, rs[0], rs[1])
		if len(s.Replaced) != 2 {
			t.Fatalf("replaced %+v", s)
		}
		got := trustOf(t, db)
		if got[1].JoinState != store.Waiting || got[1].Satisfaction != 5 || got[2].JoinState != store.Correction {
			t.Fatalf("after replacement %+v", got)
		}
		left, err := db.Evaluations(ctx, "", 10)
		if err != nil || len(left) != 1 || left[0].RatingID != rs[1].ID || left[0].State != store.Delivered {
			t.Fatalf("evaluations %+v %v", left, err)
		}
		cs := conflicts(t, db)
		if len(cs) != 2 || cs[0].PrevJoin != store.Joined || !cs[0].Displaced {
			t.Fatalf("evidence %+v", cs)
		}
		_ = record.Counted
	})
}
