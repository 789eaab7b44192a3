package ingest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/trust"
	"github.com/hallrate/hallrate/record"
)

func signedPress(t *testing.T, key ed25519.PrivateKey, counter string, seq uint64, sat int, prev string) record.Press {
	t.Helper()
	p := record.Press{V: 1, ID: record.PressID("w05-a", "e1", seq), Device: "w05-a", Hall: "h1", Counter: counter,
		Epoch: "e1", Seq: seq, Button: 6 - sat, Label: "x", Satisfaction: sat, Disposition: record.Counted,
		Ticket:    &record.TicketRef{ID: fmt.Sprint("A", seq), State: record.Done, Staff: "S1"},
		PressedAt: "2026-11-24T09:15:03.123+08:00", ClockSynced: true, Prev: prev}
	p.Sign(key)
	return p
}

func msg(t *testing.T, p record.Press) Message {
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return Message{Topic: prefix + "/h1/" + p.Counter + "/rating", Payload: b}
}

func TestIngestVerifies(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	inv, err := trust.ParseInventory(strings.NewReader("w05-a h1 W05 " + record.EncodePublicKey(pub) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	db := openStore(t)
	var flagged []string
	var stored []store.Rating
	in, err := New(Config{Prefix: prefix, Store: db, Keys: inv, HoldUnverified: true,
		DueDate:  func(time.Time) string { return "2026-12-03" },
		OnRating: func(r store.Rating) { stored = append(stored, r) },
		OnTrust:  func(id, reason string) { flagged = append(flagged, id+" "+reason) }})
	if err != nil {
		t.Fatal(err)
	}
	p1 := signedPress(t, key, "W05", 1, 5, "")
	p2 := signedPress(t, key, "W05", 2, 1, p1.ChainHash())
	tampered := signedPress(t, key, "W05", 3, 5, p2.ChainHash())
	tampered.Satisfaction = 1 // a 非常满意 made a 差评
	moved := signedPress(t, key, "W06", 4, 5, tampered.ChainHash())
	handle(t, in, msg(t, p1), msg(t, p2), msg(t, tampered), msg(t, moved))
	want := map[string]string{
		p1.ID: "verified ", p2.ID: "verified ", tampered.ID: "flagged bad_signature",
		// The chain holds (prev is over the record as the device made it),
		// but the device is not assigned to W06.
		moved.ID: "flagged wrong_counter",
	}
	for _, r := range stored {
		if got := r.Trust + " " + r.TrustReason; got != want[r.ID] {
			t.Errorf("%s: %q, want %q", r.ID, got, want[r.ID])
		}
		if (r.Trust == store.TrustFlagged) != r.Hold || (r.Trust == store.TrustVerified) != r.Verified {
			t.Errorf("%s: hold %v verified %v", r.ID, r.Hold, r.Verified)
		}
	}
	// The verified 差评 opens a follow-up; the forged one does not.
	if s := in.Stats(); s.Verified != 2 || s.Flagged != 2 || s.Followups != 1 || len(flagged) != 2 {
		t.Fatalf("stats %+v, flagged %v", s, flagged)
	}
	// Without a trusted key: unverified, tofu once the status announced
	// the key, and held back.
	other, otherKey, _ := ed25519.GenerateKey(nil)
	st, _ := json.Marshal(record.Status{V: 1, Online: true, Device: "w07-a", PubKey: record.EncodePublicKey(other)})
	p := signedPress(t, otherKey, "W07", 1, 5, "")
	p.Device, p.ID = "w07-a", record.PressID("w07-a", "e1", 1)
	p.Sign(otherKey)
	stored = nil
	handle(t, in, Message{Topic: prefix + "/h1/W07/status", Payload: st}, msg(t, p))
	if len(stored) != 1 || stored[0].Trust != store.TrustUnverified || stored[0].TrustReason != "no_trusted_key,tofu" || !stored[0].Hold {
		t.Fatalf("tofu %+v", stored)
	}
	rs, err := db.Ratings(context.Background(), store.RatingFilter{JoinState: store.Excluded})
	if err != nil || len(rs) != 3 {
		t.Fatalf("excluded %+v %v", rs, err)
	}
	// A status announcing another key than the trusted one is an alarm.
	st, _ = json.Marshal(record.Status{V: 1, Online: true, Device: "w05-a", PubKey: record.EncodePublicKey(other)})
	handle(t, in, Message{Topic: prefix + "/h1/W05/status", Payload: st})
	if s := in.Stats(); s.KeyMismatches != 1 {
		t.Fatalf("key mismatches %d", s.KeyMismatches)
	}
}

// TestTOFUFirstKeyDecides: without a keys file the first key a device
// announced decides, across a restart (FirstKeys from the store): a later
// status with another key neither takes the device over nor makes its
// records rank; a record signed by the first key beats an unsigned copy
// stored before it.
func TestTOFUFirstKeyDecides(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	impostor, impostorKey, _ := ed25519.GenerateKey(nil)
	db := openStore(t)
	var stored []store.Rating
	in, err := New(Config{Prefix: prefix, Store: db, OnRating: func(r store.Rating) { stored = append(stored, r) }})
	if err != nil {
		t.Fatal(err)
	}
	status := func(k ed25519.PublicKey) Message {
		st, _ := json.Marshal(record.Status{V: 1, Online: true, Device: "w05-a", PubKey: record.EncodePublicKey(k)})
		return Message{Topic: prefix + "/h1/W05/status", Payload: st}
	}
	genuine := signedPress(t, key, "W05", 1, 1, "")
	squat := genuine
	squat.Satisfaction, squat.Sig, squat.SigV = 5, "", 0
	handle(t, in, msg(t, squat), status(pub), status(impostor))
	if s := in.Stats(); s.KeyMismatches != 1 {
		t.Fatalf("second key not reported: %+v", s)
	}
	// A restart: the first key comes from the store.
	keys, err := db.FirstKeys(context.Background())
	if err != nil || keys["w05-a"] != record.EncodePublicKey(pub) {
		t.Fatalf("first keys %v %v", keys, err)
	}
	k, _ := record.DecodePublicKey(keys["w05-a"])
	stored = nil
	in, err = New(Config{Prefix: prefix, Store: db, FirstKeys: map[string]ed25519.PublicKey{"w05-a": k},
		OnRating: func(r store.Rating) { stored = append(stored, r) }})
	if err != nil {
		t.Fatal(err)
	}
	fake := signedPress(t, impostorKey, "W05", 2, 5, "")
	handle(t, in, status(impostor), msg(t, genuine), msg(t, fake))
	got := map[string]string{}
	for _, r := range stored {
		got[r.ID] = fmt.Sprint(r.Trust, " ", r.TrustReason, " ", r.Satisfaction)
	}
	// The genuine seq 1 replaced the unsigned copy; the impostor's seq 2
	// is not tofu, and its empty prev breaks the chain.
	if len(stored) != 2 || got[genuine.ID] != "unverified no_trusted_key,tofu 1" ||
		got[fake.ID] != "flagged no_trusted_key,chain_break 5" {
		t.Fatalf("stored %v", got)
	}
}
