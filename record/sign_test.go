package record

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func chain(t *testing.T, key ed25519.PrivateKey, n int) []Press {
	t.Helper()
	var out []Press
	prev := ""
	for i := 1; i <= n; i++ {
		p := Press{V: 1, Device: "w05-a", Hall: "h1", Counter: "W05", Epoch: "9f2c41d7", Seq: uint64(i),
			Button: 1, Label: "very_satisfied", Satisfaction: 5, Disposition: Counted,
			Ticket: &TicketRef{ID: "A1", State: Serving}, PressedAt: "2026-11-24T09:15:03.123+08:00", Prev: prev}
		p.ID = PressID(p.Device, p.Epoch, p.Seq)
		p.Sign(key)
		prev = p.ChainHash()
		out = append(out, p)
	}
	return out
}

func TestSignVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	rs := chain(t, key, 3)
	for _, r := range rs {
		if err := r.Verify(pub); err != nil {
			t.Fatal(err)
		}
	}
	if rs[0].Prev != "" || rs[1].Prev != rs[0].ChainHash() || len(rs[1].Prev) != 64 {
		t.Fatalf("chain: %q %q", rs[0].Prev, rs[1].Prev)
	}
	tampered := []func(p *Press){
		func(p *Press) { p.Satisfaction = 2 },
		func(p *Press) { p.Disposition = Repeat },
		func(p *Press) { p.Ticket.ID = "A2" },
		func(p *Press) { p.PressedAt = "2026-11-24T09:15:04.123+08:00" },
		func(p *Press) { p.Counter = "W06" },
		func(p *Press) { p.Prev = "00" },
	}
	for i, f := range tampered {
		r := rs[1]
		tk := *r.Ticket
		r.Ticket = &tk
		f(&r)
		if err := r.Verify(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tamper %d: %v", i, err)
		}
	}
	if err := rs[0].Verify(other); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another device's key: %v", err)
	}
	enc := EncodePublicKey(pub)
	if got, err := DecodePublicKey(enc); err != nil || !got.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
}

// SignChain signs as Sign does and hashes what ChainHash hashes, from one
// rendering of the message.
func TestSignChain(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	p := chain(t, key, 2)[1]
	q := p
	c, err := q.SignChain(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Verify(pub); err != nil || q.SigV != SigV2 {
		t.Fatalf("SignChain's record: %v, sigv %d", err, q.SigV)
	}
	if c != q.ChainHash() || c != p.ChainHash() || len(c) != 64 {
		t.Fatalf("chain %q, ChainHash %q, Sign's %q", c, q.ChainHash(), p.ChainHash())
	}
}

// BenchmarkSignChain is the record's part of the press's way to the
// outbox: a typical record signed over its canonical form, its chain hash,
// and its payload encoded.
func BenchmarkSignChain(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(nil)
	b.ReportAllocs()
	for b.Loop() {
		p := Press{V: Version, ID: "w05-a-9f2c41d7-12", Device: "w05-a", Hall: "h1", Counter: "W05", Epoch: "9f2c41d7", Seq: 12,
			Button: 1, Label: "非常满意", Satisfaction: 5, Disposition: Counted,
			Ticket:    &TicketRef{ID: "A023", State: Serving, Staff: "S017", Item: "营业执照"},
			PressedAt: "2026-11-24T09:15:03.123+08:00", BootID: "0123456789abcdef0123456789abcdef", UptimeMS: 123456,
			Prev: strings.Repeat("ab", 32)}
		if _, err := p.SignChain(key); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(p); err != nil {
			b.Fatal(err)
		}
	}
}
