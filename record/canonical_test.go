package record

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCanonicalJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{ "b" : 1, "a":[true,false,null, {"z":"", "y":-3}] }`, `{"a":[true,false,null,{"y":-3,"z":""}],"b":1}`},
		{`{"n":5.0,"m":5e0,"k":-0,"big":9007199254740991}`, `{"big":9007199254740991,"k":0,"m":5,"n":5}`},
		{`{"s":"\"\\\/\b\t\n\f\r\u0001\u001f\u007f\u00e9\u2028<>&"}`, "{\"s\":\"\\\"\\\\/\\b\\t\\n\\f\\r\\u0001\\u001f\u007f\u00e9\u2028<>&\"}"},
		{`{"s":"营业执照 \ud83d\ude00"}`, "{\"s\":\"营业执照 \U0001F600\"}"},
		// Code point order: "Z" < "a" < "é" < "营".
		{`{"营":1,"é":2,"a":3,"Z":4}`, `{"Z":4,"a":3,"é":2,"营":1}`},
		{`{"sig":"x","a":{"sig":"kept"}}`, `{"a":{"sig":"kept"}}`},
	} {
		got, err := CanonicalJSON([]byte(c.in), "sig")
		if err != nil || string(got) != c.want {
			t.Errorf("CanonicalJSON(%s)\n got %s, %v\nwant %s", c.in, got, err, c.want)
		}
	}
	for name, in := range map[string]string{
		"array":             `[1]`,
		"fraction":          `{"n":5.5}`,
		"too big":           `{"n":9007199254740992}`,
		"too small":         `{"n":-1e300}`,
		"duplicate":         `{"a":1,"a":1}`,
		"nested duplicate":  `{"t":{"a":1,"a":2}}`,
		"lone high":         `{"s":"\ud83d"}`,
		"lone low":          `{"s":"\ude00x"}`,
		"high then not low": `{"s":"\ud83d\u0041"}`,
		"invalid utf-8":     "{\"s\":\"\xff\"}",
		"trailing":          `{"a":1} {}`,
		"not json":          `{"a":}`,
		"truncated":         `{"a":1`,
	} {
		if _, err := CanonicalJSON([]byte(in)); !errors.Is(err, ErrNotCanonical) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSignV2CoversEveryField(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	p := Press{V: 1, Device: "w05-a", Hall: "h1", Counter: "W05", Epoch: "9f2c41d7", Seq: 3,
		Button: 1, Label: "very_satisfied", Satisfaction: 5, Disposition: Counted,
		Ticket:    &TicketRef{ID: "A1", State: Done, Staff: "S017", Item: "licence", ProjectNo: "620100-2026-000123"},
		PressedAt: "2026-11-24T09:15:03.123+08:00", ClockSynced: true, BootID: "b1", UptimeMS: 5, Prev: strings.Repeat("ab", 32)}
	p.ID = PressID(p.Device, p.Epoch, p.Seq)
	if err := p.Sign(key); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(p)
	if !strings.Contains(string(payload), `"sigv":2`) {
		t.Fatalf("no sigv in %s", payload)
	}
	// Every member of the payload, nested ones too, changed one at a
	// time in the JSON a consumer receives, breaks the signature.
	var obj map[string]any
	if err := json.Unmarshal(payload, &obj); err != nil {
		t.Fatal(err)
	}
	change := func(v any) any {
		switch v := v.(type) {
		case string:
			return v + "x"
		case float64:
			return v + 1
		case bool:
			return !v
		}
		return "x"
	}
	n := 0
	check := func(name string, mutated map[string]any) {
		t.Helper()
		b, _ := json.Marshal(mutated)
		q, err := DecodePress(b)
		if err != nil {
			return // a change the decoder refuses is caught too
		}
		n++
		if err := q.Verify(pub); err == nil {
			t.Errorf("changed %s: still verifies", name)
		}
	}
	for k, v := range obj {
		if k == "sig" {
			continue
		}
		if tk, ok := v.(map[string]any); ok {
			for tkk, tv := range tk {
				m := clone(obj)
				m[k].(map[string]any)[tkk] = change(tv)
				check(k+"."+tkk, m)
			}
			continue
		}
		m := clone(obj)
		m[k] = change(v)
		check(k, m)
	}
	// A member this build does not know is covered: added, it breaks the
	// signature; signed with it, it verifies.
	m := clone(obj)
	m["ticket"].(map[string]any)["source"] = "staff"
	check("ticket.source added", m)
	m = clone(obj)
	m["kind"] = "reason"
	check("kind added", m)
	if n < 12 {
		t.Fatalf("only %d changes were decodable", n)
	}
	q, err := DecodePress(payload)
	if err != nil || q.Verify(pub) != nil {
		t.Fatalf("genuine record: %v %v", err, q.Verify(pub))
	}
	// Changing the decoded struct is verified too, not the stale payload.
	q.Ticket.Staff = "S099"
	if err := q.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("staff changed in the struct: %v", err)
	}
}

func TestUnknownMembersSigned(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	// A newer agent's record with members this build does not know.
	in := `{"v":1,"id":"d:e:1","device":"d","hall":"h","counter":"c","epoch":"e","seq":1,"button":1,
		"label":"x","satisfaction":5,"disposition":"counted","ticket":{"id":"A1","state":"done","source":"staff"},
		"pressed_at":"2026-11-24T09:15:03.123+08:00","prev":"","kind":"rating","sigv":2}`
	c, err := CanonicalJSON([]byte(in), "sig")
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(key, append([]byte(CanonicalTagV2+"\n"), c...))
	var obj map[string]any
	_ = json.Unmarshal([]byte(in), &obj)
	obj["sig"] = sig
	b, _ := json.Marshal(obj)
	p, err := DecodePress(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(pub); err != nil {
		t.Fatalf("record with unknown members: %v", err)
	}
	obj["ticket"].(map[string]any)["source"] = "queue"
	b, _ = json.Marshal(obj)
	if p, _ = DecodePress(b); p.Verify(pub) == nil {
		t.Fatal("unknown member changed: still verifies")
	}
}

func TestSigV1StillVerifies(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	p := Press{V: 1, ID: "d:e:1", Device: "d", Hall: "h", Counter: "c", Epoch: "e", Seq: 1, Button: 1, Label: "x",
		Satisfaction: 5, Disposition: NoTicket, PressedAt: "2026-11-24T09:15:03.123+08:00"}
	if err := p.SignV1(key); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	if strings.Contains(string(b), "sigv") {
		t.Fatalf("v1 record carries sigv: %s", b)
	}
	q, err := DecodePress(b)
	if err != nil || q.Verify(pub) != nil {
		t.Fatalf("v1 record: %v %v", err, q.Verify(pub))
	}
	// v1 does not cover the ticket's staff: that is why v2 exists.
	if q.ChainHash() != p.ChainHash() || len(q.ChainHash()) != 64 {
		t.Fatal("v1 chain hash")
	}
	if _, err := DecodePress([]byte(strings.Replace(string(b), `"prev":""`, `"prev":"","sigv":3`, 1))); err == nil ||
		!strings.Contains(err.Error(), "sigv") {
		t.Fatalf("sigv 3: %v", err)
	}
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// FuzzCanonicalJSON: the canonical form never panics, is a fixed point
// (canonical input stays byte for byte), is valid JSON, and is the same
// for any spacing of the same object.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,{"z":"é\n"}]}`, `{"n":5.0}`, `{"s":"\ud83d\ude00"}`, `{}`, `[]`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := CanonicalJSON(in)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("not JSON: %q", c)
		}
		again, err := CanonicalJSON(c)
		if err != nil || string(again) != string(c) {
			t.Fatalf("not a fixed point: %q -> %q (%v)", c, again, err)
		}
		var v any
		_ = json.Unmarshal(in, &v)
		spaced, _ := json.MarshalIndent(v, " ", "  ")
		if s, err := CanonicalJSON(spaced); err == nil && string(s) != string(c) {
			t.Fatalf("spacing changes it: %q vs %q", s, c)
		}
	})
}

// The byte-level canonical form is the one encoding/json's token reader
// gave (records signed before it must verify after): the same output, or
// an error for both, for any input.
func FuzzCanonicalMatchesReference(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,{"z":"é\n"}]}`, `{"n":5.0}`, `{"n":-0,"m":1E2,"k":1e+2}`, `{"s":"\ud83d\ude00"}`,
		`{"s":"\ud83d"}`, `{"s":"\ude00x"}`, `{"s":"\ud83d\u0041"}`, `{}`, `[]`, `{"a":1,"a":2}`, ` { "sig" : "x" , "t" : { } } `,
		`{"n":05}`, `{"n":1.}`, `{"n":.5}`, `{"n":+1}`, `{"s":"\x"}`, "{\"s\":\"\x01\"}", `{"a":[1,]}`, `{"a":1,}`, `{"a":tru}`,
		`{"a":"\/\b\f\n\r\t\"\\\u00e9\u2028"}`, `{"n":9007199254740992}`, `{"n":-9007199254740991}`, `{} x`, `{"a":[[[]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := CanonicalJSON(in, "sig")
		want, werr := referenceCanonicalJSON(in, "sig")
		if (err == nil) != (werr == nil) || string(got) != string(want) {
			t.Fatalf("%q:\n got %q, %v\nwant %q, %v", in, got, err, want, werr)
		}
		if err != nil && !errors.Is(err, ErrNotCanonical) {
			t.Fatalf("%q: error %v does not wrap ErrNotCanonical", in, err)
		}
	})
}
