package trust

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/record"
)

// seededKey returns a fixed key, so seed files and failures reproduce.
func seededKey(b byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	return key.Public().(ed25519.PublicKey), key
}

// chain makes n signed, chained records of w05-a at h1/W05.
func chain(key ed25519.PrivateKey, epoch string, n int) []record.Press {
	var out []record.Press
	prev := ""
	for i := 1; i <= n; i++ {
		p := record.Press{V: 1, Device: "w05-a", Hall: "h1", Counter: "W05", Epoch: epoch, Seq: uint64(i),
			Button: 1, Label: "very_satisfied", Satisfaction: 5, Disposition: record.Counted,
			Ticket:    &record.TicketRef{ID: fmt.Sprintf("A%03d", i), State: record.Done, Staff: "S1"},
			PressedAt: fmt.Sprintf("2026-11-24T09:%02d:03.123+08:00", i%60), Prev: prev}
		p.ID = record.PressID(p.Device, p.Epoch, p.Seq)
		p.Sign(key)
		prev = p.ChainHash()
		out = append(out, p)
	}
	return out
}

func inventory(t testing.TB, pub ed25519.PublicKey) *Inventory {
	t.Helper()
	inv, err := ParseInventory(strings.NewReader(fmt.Sprintf(`# device hall counter pubkey
w05-a h1 W05 %s

w06-a	h1	W06	-
`, record.EncodePublicKey(pub))))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func audit(inv *Inventory, rs []record.Press, ends map[string]End) Report {
	a := NewAuditor(inv)
	for i := range rs {
		a.Add(&rs[i])
	}
	return a.Report(ends)
}

func one(t *testing.T, rep Report) StreamReport {
	t.Helper()
	if len(rep.Streams) != 1 {
		t.Fatalf("want one stream, got %+v", rep.Streams)
	}
	return rep.Streams[0]
}

func TestParseInventory(t *testing.T) {
	pub, _ := seededKey(1)
	inv := inventory(t, pub)
	d, ok := inv.Device("w05-a")
	if !ok || d.Hall != "h1" || d.Counter != "W05" || !d.Key.Equal(pub) {
		t.Fatalf("w05-a: %+v %v", d, ok)
	}
	if d, ok := inv.Device("w06-a"); !ok || d.Key != nil || d.Counter != "W06" {
		t.Fatalf("w06-a: %+v %v", d, ok)
	}
	if got := len(inv.Devices()); got != 2 {
		t.Fatalf("devices: %d", got)
	}
	for _, bad := range []struct{ text, want string }{
		{"w05-a h1 W05\n", "line 1: want 4 columns"},
		{"w05-a h1 W/5 -\n", `line 1: counter: "W/5"`},
		{"# c\nw05-a h1 W05 notakey\n", "line 2: pubkey of w05-a"},
		{"w05-a h1 W05 -\nw05-a h1 W06 -\n", "line 2: device w05-a listed twice"},
	} {
		_, err := ParseInventory(strings.NewReader(bad.text))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: got %v, want %q", bad.text, err, bad.want)
		}
	}
}

func TestCheck(t *testing.T) {
	pub, key := seededKey(1)
	_, otherKey := seededKey(2)
	inv := inventory(t, pub)
	good := chain(key, "e1", 1)[0]
	for _, c := range []struct {
		name      string
		inv       *Inventory
		edit      func(p *record.Press)
		announced ed25519.PublicKey
		state     State
		reasons   []string
	}{
		{"good", inv, nil, nil, Verified, nil},
		{"tampered satisfaction", inv, func(p *record.Press) { p.Satisfaction = 1 }, nil, Flagged, []string{BadSignature}},
		{"signed by another key", inv, func(p *record.Press) { p.Sign(otherKey) }, nil, Flagged, []string{BadSignature}},
		{"unsigned", inv, func(p *record.Press) { p.Sig = "" }, nil, Flagged, []string{Unsigned}},
		{"moved to W06, re-signed", inv, func(p *record.Press) { p.Counter = "W06"; p.Sign(key) }, nil, Flagged, []string{WrongCounter}},
		{"no keys file", nil, nil, nil, Unverified, []string{NoTrustedKey}},
		{"no keys file, announced key", nil, nil, pub, Unverified, []string{NoTrustedKey, TOFU}},
		{"device without key", inv, func(p *record.Press) { p.Device, p.Counter = "w06-a", "W06"; p.Sign(otherKey) }, nil, Unverified, []string{NoTrustedKey}},
		{"unknown device", inv, func(p *record.Press) { p.Device = "w99-x"; p.Sign(otherKey) }, nil, Unverified, []string{NoTrustedKey}},
	} {
		p := good
		tk := *p.Ticket
		p.Ticket = &tk
		if c.edit != nil {
			c.edit(&p)
		}
		v := Check(c.inv, &p, c.announced)
		if v.State != c.state || !slices.Equal(v.Reasons, c.reasons) {
			t.Errorf("%s: got %s %v, want %s %v", c.name, v.State, v.Reasons, c.state, c.reasons)
		}
	}
}

func TestAuditGoodChainInAnyOrder(t *testing.T) {
	pub, key := seededKey(1)
	rs := chain(key, "e1", 20)
	// Out of order and delivered twice (at least once delivery): still
	// every link holds.
	shuffled := append(slices.Clone(rs[10:]), rs[:10]...)
	shuffled = append(shuffled, rs[3], rs[17])
	s := one(t, audit(inventory(t, pub), shuffled, map[string]End{"w05-a": {"e1", 20}}))
	if s.Flagged() || s.Verified != 20 || s.Records != 20 || s.Duplicates != 2 {
		t.Fatalf("good chain: %+v", s)
	}
}

func TestAuditTamperedField(t *testing.T) {
	pub, key := seededKey(1)
	rs := chain(key, "e1", 5)
	rs[2].Satisfaction = 1 // a 非常满意 turned into a 差评 in the export
	s := one(t, audit(inventory(t, pub), rs, nil))
	// The signature fails; the next record's prev no longer matches the
	// tampered record's hash.
	if s.BadSignature.String() != "3" || s.ChainBreaks.String() != "4" || s.Verified != 4 {
		t.Fatalf("tampered: %+v", s)
	}
}

func TestAuditRemovedRecord(t *testing.T) {
	pub, key := seededKey(1)
	rs := chain(key, "e1", 6)
	// Removed from the middle: a gap.
	s := one(t, audit(inventory(t, pub), slices.Delete(slices.Clone(rs), 2, 3), nil))
	if s.Gaps.String() != "3" || len(s.ChainBreaks) != 0 || !s.Flagged() {
		t.Fatalf("removed: %+v", s)
	}
	// Removed at the end: only the status can tell, and does.
	s = one(t, audit(inventory(t, pub), rs[:5], map[string]End{"w05-a": {"e1", 6}}))
	if s.Missing.String() != "6" || !s.Flagged() {
		t.Fatalf("removed last: %+v", s)
	}
	// Removed and the rest renumbered to hide the gap: the signatures of
	// the renumbered records fail.
	cut := slices.Delete(slices.Clone(rs), 2, 3)
	for i := 2; i < len(cut); i++ {
		cut[i].Seq--
		cut[i].ID = record.PressID(cut[i].Device, cut[i].Epoch, cut[i].Seq)
	}
	s = one(t, audit(inventory(t, pub), cut, nil))
	if s.BadSignature.String() != "3-5" || len(s.Gaps) != 0 {
		t.Fatalf("removed and renumbered: %+v", s)
	}
}

func TestAuditReorderedRecord(t *testing.T) {
	pub, key := seededKey(1)
	rs := chain(key, "e1", 5)
	// Records 2 and 4 swap places in the sequence (each given the other's
	// seq), as if a rating were moved to another time.
	rs[1].Seq, rs[3].Seq = rs[3].Seq, rs[1].Seq
	rs[1].ID, rs[3].ID = record.PressID("w05-a", "e1", rs[1].Seq), record.PressID("w05-a", "e1", rs[3].Seq)
	s := one(t, audit(inventory(t, pub), rs, nil))
	if s.BadSignature.String() != "2,4" || s.ChainBreaks.String() != "2-5" {
		t.Fatalf("reordered: %+v", s)
	}
}

func TestAuditReplayUnderNewSeq(t *testing.T) {
	pub, key := seededKey(1)
	rs := chain(key, "e1", 4)
	// An old 非常满意 replayed as seq 5, its signature copied; and the
	// same replay re-chained to look like it follows seq 4.
	replay := rs[1]
	replay.Seq, replay.ID = 5, record.PressID("w05-a", "e1", 5)
	s := one(t, audit(inventory(t, pub), append(slices.Clone(rs), replay), nil))
	if s.BadSignature.String() != "5" || s.ChainBreaks.String() != "5" || s.Verified != 4 {
		t.Fatalf("replay: %+v", s)
	}
	replay.Prev = rs[3].ChainHash()
	s = one(t, audit(inventory(t, pub), append(slices.Clone(rs), replay), nil))
	if s.BadSignature.String() != "5" || len(s.ChainBreaks) != 0 {
		t.Fatalf("replay re-chained: %+v", s)
	}
	// Replayed into another epoch: the epoch is signed too.
	replay = rs[1]
	replay.Epoch, replay.ID = "e2", record.PressID("w05-a", "e2", replay.Seq)
	rep := audit(inventory(t, pub), append(slices.Clone(rs), replay), nil)
	if len(rep.Streams) != 2 || rep.Streams[1].BadSignature.String() != "2" {
		t.Fatalf("replay into another epoch: %+v", rep.Streams)
	}
}

func TestAuditConflictAndForkedChain(t *testing.T) {
	pub, key := seededKey(1)
	rs := chain(key, "e1", 3)
	// A cloned terminal with the same key and outbox signs another seq 2.
	fork := rs[1]
	fork.Satisfaction = 1
	fork.Sign(key)
	s := one(t, audit(inventory(t, pub), append(slices.Clone(rs), fork), nil))
	if s.Conflicts.String() != "2" || !s.Flagged() {
		t.Fatalf("fork: %+v", s)
	}
	// The fork alone: every signature good, the link to seq 3 broken.
	s = one(t, audit(inventory(t, pub), []record.Press{rs[0], fork, rs[2]}, nil))
	if len(s.BadSignature) != 0 || s.ChainBreaks.String() != "3" {
		t.Fatalf("fork alone: %+v", s)
	}
	// seq 1 carrying a prev.
	bad := rs[0]
	bad.Prev = rs[2].ChainHash()
	bad.Sign(key)
	s = one(t, audit(inventory(t, pub), []record.Press{bad}, nil))
	if s.ChainBreaks.String() != "1" {
		t.Fatalf("seq 1 with prev: %+v", s)
	}
}

func TestAuditUnverifiedAndComplete(t *testing.T) {
	pub, key := seededKey(1)
	rs := chain(key, "e1", 5)[2:]
	a := NewAuditor(nil)
	a.Announce("w05-a", pub)
	for i := range rs {
		a.Add(&rs[i])
	}
	rep := a.Report(nil)
	s := one(t, rep)
	if s.Verified != 0 || s.Unverified != 3 || s.TOFU != 3 || s.Flagged() || rep.Unverified() != 3 {
		t.Fatalf("no keys: %+v", s)
	}
	a = NewAuditor(inventory(t, pub))
	a.Complete = true
	for i := range rs {
		a.Add(&rs[i])
	}
	if s := one(t, a.Report(nil)); s.Gaps.String() != "1-2" {
		t.Fatalf("complete: %+v", s)
	}
}

func TestAuditMalformedAndReport(t *testing.T) {
	pub, key := seededKey(1)
	a := NewAuditor(inventory(t, pub))
	for i, r := range chain(key, "e1", 2) {
		b, _ := json.Marshal(r)
		a.AddLine(b, fmt.Sprintf("line %d", i+1))
	}
	a.AddLine([]byte(`{"v":1,"id":"x"}`), "line 3")
	rep := a.Report(map[string]End{"w06-a": {"e9", 2}})
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"w05-a epoch e1 (h1/W05): 2 records seq 1-2, 2 verified, 0 unverified, ok",
		"w06-a epoch e9: 0 records, 0 verified, 0 unverified, MISSING (status says delivered) seq 1-2 (2)",
		"1 lines are not press records:\n  line 3: record: device",
		"verify: 2 device epochs, FLAGGED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestACL(t *testing.T) {
	pub, _ := seededKey(1)
	var b strings.Builder
	if err := ACL(&b, inventory(t, pub), "hallrate/v1", "hall-collector"); err != nil {
		t.Fatal(err)
	}
	want := `user hall-collector
topic read hallrate/v1/#
topic write hallrate/v1/+/+/ticket
topic write hallrate/v1/+/alert
topic write hallrate/v1/+/+/stored

user w05-a
topic write hallrate/v1/h1/W05/rating
topic write hallrate/v1/h1/W05/status
topic read hallrate/v1/h1/W05/ticket
topic read hallrate/v1/h1/W05/stored

user w06-a
topic write hallrate/v1/h1/W06/rating
topic write hallrate/v1/h1/W06/status
topic read hallrate/v1/h1/W06/ticket
topic read hallrate/v1/h1/W06/stored
`
	if !strings.HasSuffix(b.String(), want) {
		t.Fatalf("acl:\n%s", b.String())
	}
}
