package e2e

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// forgeryHall is a hall on a broker without ACLs, where anyone may publish
// on any topic: a real Mosquitto, a real agent whose key the hall trusts, a
// real collector exporting to an e-supervision endpoint, and the genuine
// records as a subscriber saw them.
type forgeryHall struct {
	t      *testing.T
	port   int
	api    string
	bin    string
	conf   string
	c      *collectorProc
	a      *agentProc
	ep     *esupEndpoint
	sub    *mqtttest.Collector
	seq    uint64 // the agent's last seq
	ticket int
	pub    ed25519.PublicKey
	// tofu: the hall has no keys file; genuine records are unverified,
	// trusted on first use of the key the device announced.
	tofu bool
}

func newForgeryHall(t *testing.T, tofu bool) *forgeryHall {
	m := mqtttest.StartMosquitto(t, "")
	h := &forgeryHall{t: t, port: m.Port(), bin: buildCollector(t), tofu: tofu}
	dir := t.TempDir()
	agentConf := writeConfig(t, filepath.Join(dir), "w05-a", m.URL(), "")
	keys := filepath.Join(dir, "keys")
	h.pub = devicePubKey(t, agentConf)
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("w05-a %s %s %s\n", hall, counter,
		record.EncodePublicKey(h.pub))), 0o600); err != nil {
		t.Fatal(err)
	}
	h.ep = &esupEndpoint{addr: fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t)),
		accepted: map[string]int{}, bodies: map[string]map[string]any{}, changed: make(chan struct{})}
	h.ep.up(t)
	trustConf := fmt.Sprintf("[trust]\nkeys_file = %q\n", keys)
	if tofu {
		trustConf = ""
	}
	var apiAddr string
	h.conf, apiAddr = hallConf{ClientID: "collector-forgery-e2e", Broker: m.URL(), Esup: h.ep.esupConf(), More: trustConf}.write(t, dir)
	h.api = "http://" + apiAddr
	h.c = startCollectorBin(t, h.bin, h.conf)
	waitHTTP(t, h.api+"/healthz", 200, h.c.String)
	h.sub = mqtttest.Subscribe(t, m.URL(), "forgery-e2e-observer", topics.rating)
	h.a = startAgent(t, agentConf)
	return h
}

func (h *forgeryHall) logs() string { return h.c.String() + "\nagent:\n" + h.a.log() }

// serve calls the next ticket, done, with its case number.
func (h *forgeryHall) serve() string {
	h.ticket++
	id := fmt.Sprintf("A%03d", h.ticket)
	b, _ := json.Marshal(record.Ticket{V: 1, Ticket: id, State: record.Done, Staff: "S017", Item: "licence",
		ProjectNo: "P-" + id, At: time.Now().Format(time.RFC3339)})
	mosquittoPub(h.t, h.port, "-t", topics.ticket, "-q", "1", "-r", "-m", string(b))
	h.a.waitLog(1, wait, "msg=ticket ", "ticket="+id+" ")
	return id
}

// press presses a button and returns the genuine record as published.
func (h *forgeryHall) press(button int) map[string]any {
	h.t.Helper()
	h.seq++
	h.a.press(button)
	var rec map[string]any
	h.sub.Wait(h.t, wait, fmt.Sprint("record of seq ", h.seq), func(ms []mqtttest.Message) bool {
		for _, m := range ms {
			// The observer sees the forgeries too: the genuine record is
			// the one that verifies under the device's key.
			p, err := record.DecodePress(m.Payload)
			if err != nil || p.Seq != h.seq || p.Verify(h.pub) != nil {
				continue
			}
			var r map[string]any
			if json.Unmarshal(m.Payload, &r) == nil {
				rec = r
				return true
			}
		}
		return false
	})
	return rec
}

func (h *forgeryHall) idOf(seq uint64) string {
	ms := h.sub.Messages()
	var p struct{ Device, Epoch string }
	if len(ms) == 0 || json.Unmarshal(ms[0].Payload, &p) != nil {
		h.t.Fatal("no genuine record seen yet")
	}
	return record.PressID(p.Device, p.Epoch, seq)
}

// forge returns rec changed by the given members, for seq (id and seq set
// to match), as JSON.
func forge(rec map[string]any, seq uint64, change map[string]any) string {
	f := map[string]any{}
	b, _ := json.Marshal(rec)
	json.Unmarshal(b, &f)
	f["seq"] = seq
	f["id"] = fmt.Sprintf("%s:%s:%d", f["device"], f["epoch"], seq)
	for k, v := range change {
		if v == nil {
			delete(f, k)
			continue
		}
		if k == "staff" || k == "projectNo" {
			f["ticket"].(map[string]any)[k] = v
			continue
		}
		f[k] = v
	}
	out, _ := json.Marshal(f)
	return string(out)
}

// publish sends a forgery with mosquitto_pub on a counter's rating topic
// and waits until the collector holds it, stored or as evidence.
func (h *forgeryHall) publish(counterTopic, payload string) {
	h.t.Helper()
	var f struct{ ID string }
	json.Unmarshal([]byte(payload), &f)
	before, wasStored := len(h.evidence(f.ID)), h.storedRaw(f.ID)
	mosquittoPub(h.t, h.port, "-t", "hallrate/v1/h1/"+counterTopic+"/rating", "-q", "1", "-m", payload)
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		if len(h.evidence(f.ID)) > before || !wasStored && h.storedRaw(f.ID) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the collector never took the forgery of %s\n%s", f.ID, h.logs())
		}
	}
}

// stored reports whether id is stored as a genuine record is: verified,
// or without a keys file trusted on first use.
func (h *forgeryHall) stored(id string) bool {
	for _, r := range h.ratings() {
		if r.ID == id {
			return r.Trust == h.genuineTrust() && r.TrustReason == h.genuineReason()
		}
	}
	return false
}

func (h *forgeryHall) genuineTrust() string {
	if h.tofu {
		return "unverified"
	}
	return "verified"
}

func (h *forgeryHall) genuineReason() string {
	if h.tofu {
		return "no_trusted_key,tofu"
	}
	return ""
}

// storedRaw reports whether id is stored in any state.
func (h *forgeryHall) storedRaw(id string) bool {
	for _, r := range h.ratings() {
		if r.ID == id {
			return true
		}
	}
	return false
}

type storedRating struct {
	ID           string `json:"id"`
	Satisfaction int    `json:"satisfaction"`
	Staff        string `json:"staff"`
	Trust        string `json:"trust"`
	TrustReason  string `json:"trust_reason"`
	JoinState    string `json:"join_state"`
	Case         string `json:"case"`
}

func (h *forgeryHall) ratings() []storedRating {
	_, body := httpDo(h.t, "GET", h.api+"/api/v1/ratings?limit=1000", "")
	var rs []storedRating
	if err := json.Unmarshal([]byte(body), &rs); err != nil {
		var wrapped struct {
			Ratings []storedRating `json:"ratings"`
		}
		if err := json.Unmarshal([]byte(body), &wrapped); err != nil {
			h.t.Fatalf("ratings: %v: %s", err, body)
		}
		rs = wrapped.Ratings
	}
	return rs
}

type evidence struct {
	RatingID    string `json:"ratingId"`
	Raw         string `json:"raw"`
	Trust       string `json:"trust"`
	TrustReason string `json:"trust_reason"`
	Displaced   bool   `json:"displaced"`
}

func (h *forgeryHall) evidence(id string) []evidence {
	_, body := httpDo(h.t, "GET", h.api+"/api/v1/audit", "")
	var a struct {
		Conflicts []evidence `json:"conflicts"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		h.t.Fatalf("audit: %v: %s", err, body)
	}
	var out []evidence
	for _, c := range a.Conflicts {
		if c.RatingID == id {
			out = append(out, c)
		}
	}
	return out
}

// genuineWins waits until the genuine record rec is stored verified with
// its own satisfaction and staff, joined to its case, its evaluation
// accepted exactly once, shown as the counter's last rating, with the
// forgery kept as flagged evidence.
func (h *forgeryHall) genuineWins(rec map[string]any, forgery string, last bool) {
	h.t.Helper()
	id := rec["id"].(string)
	sat := int(rec["satisfaction"].(float64))
	for deadline := time.Now().Add(wait); ; time.Sleep(100 * time.Millisecond) {
		var r storedRating
		for _, x := range h.ratings() {
			if x.ID == id {
				r = x
			}
		}
		h.ep.mu.Lock()
		accepted, body := h.ep.accepted[id], h.ep.bodies[id]
		h.ep.mu.Unlock()
		if r.Trust == h.genuineTrust() && r.JoinState == "joined" && accepted >= 1 {
			if r.Satisfaction != sat || r.Staff != "S017" || r.TrustReason != h.genuineReason() || accepted != 1 ||
				body["satisfaction"] != fmt.Sprint(sat) || body["verified"] != !h.tofu {
				h.t.Fatalf("%s stored as %+v, evaluation accepted %d times: %v", id, r, accepted, body)
			}
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s not stored verified and joined and exported: %+v (accepted %d)\n%s", id, r, accepted, h.logs())
		}
	}
	ev := h.evidence(id)
	found := false
	for _, e := range ev {
		found = found || (e.Raw == forgery && e.Trust == "flagged" && strings.Contains(e.TrustReason, "conflict"))
	}
	if !found {
		h.t.Fatalf("forgery of %s not kept as evidence: %+v\nforgery: %s", id, ev, forgery)
	}
	if last {
		h.tileShows(rec)
	}
}

// tileShows checks that the counter's tile shows rec as its last rating.
func (h *forgeryHall) tileShows(rec map[string]any) {
	h.t.Helper()
	id := rec["id"].(string)
	sat := int(rec["satisfaction"].(float64))
	_, body := httpDo(h.t, "GET", h.api+"/api/v1/hall", "")
	var v struct {
		Tiles []struct {
			Counter string `json:"counter"`
			Last    *struct {
				ID    string `json:"id"`
				Level struct {
					Code int `json:"code"`
				} `json:"level"`
			} `json:"last"`
		} `json:"tiles"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		h.t.Fatalf("hall view: %v: %s", err, body)
	}
	for _, tl := range v.Tiles {
		if tl.Counter == counter && (tl.Last == nil || tl.Last.ID != id || tl.Last.Level.Code != sat) {
			h.t.Fatalf("tile of %s does not show %s (satisfaction %d): %s", counter, id, sat, body)
		}
	}
}

// TestForgeriesNeverWin: on a broker without ACLs, forged copies published
// with mosquitto_pub, before or after the genuine record, signed badly or
// not at all, on the right counter's topic or another's, never take the
// genuine record's place. Each genuine record ends stored verified, joined,
// exported once, counted in the report and shown on the tile; each forgery
// is kept as evidence; the chain of the genuine records stays unbroken
// (verify -store finds nothing flagged).
func TestForgeriesNeverWin(t *testing.T) {
	h := newForgeryHall(t, false)
	h.serve()
	first := h.press(1)
	h.genuineWinsNoForgery(first)
	counted := 1

	t.Run("forged future seq first", func(t *testing.T) {
		h.t = t
		h.serve()
		forged := forge(first, h.seq+1, map[string]any{"satisfaction": 1, "button": 4, "label": "dissatisfied"})
		h.publish(counter, forged)
		if h.stored(h.idOf(h.seq+1)) || !h.storedRaw(h.idOf(h.seq+1)) {
			t.Fatal("the forgery is not stored flagged ahead of the genuine record")
		}
		rec := h.press(2)
		counted++
		h.genuineWins(rec, forged, true)
		if ev := h.evidence(rec["id"].(string)); len(ev) != 1 || !ev[0].Displaced || !strings.Contains(ev[0].TrustReason, "bad_signature") {
			t.Fatalf("displaced forgery: %+v", ev)
		}
	})
	t.Run("forged copy second", func(t *testing.T) {
		h.t = t
		h.serve()
		rec := h.press(1)
		counted++
		forged := forge(rec, h.seq, map[string]any{"satisfaction": 1, "button": 4, "label": "dissatisfied"})
		h.publish(counter, forged)
		h.genuineWins(rec, forged, true)
	})
	t.Run("replay with a changed field", func(t *testing.T) {
		h.t = t
		h.serve()
		rec := h.press(4) // a genuine 差评
		counted++
		h.waitVerified(rec)
		// The rating made a 非常满意, moved to another staff member, or
		// to another case: the signature covers the whole record.
		for _, change := range []map[string]any{{"satisfaction": 5, "button": 1, "label": "very_satisfied"},
			{"staff": "S099"}, {"projectNo": "P-OTHER"}} {
			forged := forge(rec, h.seq, change)
			h.publish(counter, forged)
			h.genuineWins(rec, forged, true)
			ev := h.evidence(rec["id"].(string))
			if last := ev[0]; last.Raw != forged || last.TrustReason != "bad_signature,conflict" || last.Displaced {
				t.Fatalf("%v: evidence %+v", change, last)
			}
		}
	})
	t.Run("unsigned copy on another counter's topic", func(t *testing.T) {
		h.t = t
		h.serve()
		rec := h.press(4)
		counted++
		h.waitVerified(rec)
		forged := forge(rec, h.seq, map[string]any{"satisfaction": 5, "button": 1, "label": "very_satisfied", "sig": nil, "sigv": nil})
		h.publish("W06", forged)
		h.genuineWins(rec, forged, true)
	})
	t.Run("squatted seqs", func(t *testing.T) {
		h.t = t
		h.serve()
		base := h.seq
		var forged []string
		for i := uint64(1); i <= 3; i++ {
			f := forge(first, base+i, map[string]any{"satisfaction": 5, "prev": "", "sig": nil, "sigv": nil})
			h.publish(counter, f)
			forged = append(forged, f)
		}
		rec := h.press(4) // the first genuine one a 差评: it must get its follow-up
		counted++
		h.genuineWins(rec, forged[0], false)
		for i := 1; i < 3; i++ {
			h.serve()
			rec = h.press(3)
			counted++
			h.genuineWins(rec, forged[i], false)
		}
		h.serve()
		rec = h.press(2)
		counted++
		h.genuineWinsNoForgery(rec)
		h.tileShows(rec)
		_, fu := httpDo(t, "GET", h.api+"/api/v1/followups?state=open", "")
		if !strings.Contains(fu, fmt.Sprintf(`"ratingId": "%s"`, h.idOf(base+1))) {
			t.Fatalf("the genuine 差评 of seq %d has no follow-up: %s", base+1, fu)
		}
	})
	h.t = t
	// Shown in the audit panel of the hall's screen.
	_, panel := httpDo(t, "GET", h.api+"/fragment/audit?lang=en", "")
	if !strings.Contains(panel, `class="warn conflict" data-id="`+h.idOf(2)+`"`) || !strings.Contains(panel, "replaced by the verified record") {
		t.Fatalf("audit panel does not show the evidence:\n%s", panel)
	}
	// Counted in the report: the genuine ratings, none of the forgeries.
	_, rep := httpDo(t, "GET", h.api+"/api/v1/report?month="+time.Now().UTC().Format("2006-01"), "")
	if !strings.Contains(rep, fmt.Sprintf(`"rated": %d`, counted)) {
		t.Fatalf("report does not count %d ratings:\n%s", counted, rep)
	}
	h.ep.mu.Lock()
	for key, n := range h.ep.accepted {
		if n != 1 {
			t.Errorf("evaluation %s accepted %d times", key, n)
		}
	}
	if len(h.ep.accepted) != counted {
		t.Errorf("%d evaluations accepted, want %d", len(h.ep.accepted), counted)
	}
	h.ep.mu.Unlock()
	h.a.stop()
	h.c.kill()
	out, code := runCollector(t, h.bin, "verify", "-store", "-config", h.conf)
	if code != 0 || !strings.Contains(out, "nothing flagged") {
		t.Fatalf("verify -store: exit %d:\n%s", code, out)
	}
}

// waitVerified waits until rec is stored verified.
func (h *forgeryHall) waitVerified(rec map[string]any) {
	h.t.Helper()
	for deadline := time.Now().Add(wait); !h.stored(rec["id"].(string)); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s never stored verified\n%s", rec["id"], h.logs())
		}
	}
}

// genuineWinsNoForgery waits until rec is stored, joined and exported.
func (h *forgeryHall) genuineWinsNoForgery(rec map[string]any) {
	h.t.Helper()
	h.waitVerified(rec)
	id := rec["id"].(string)
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		h.ep.mu.Lock()
		n := h.ep.accepted[id]
		h.ep.mu.Unlock()
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s never exported\n%s", id, h.logs())
		}
	}
}

// TestSquattersGiveWayWithoutKeys: a hall without a keys file trusts the
// first key a terminal announced. Unsigned records published ahead for the
// next three seqs, replaying a rated ticket's case, are stored first and
// counted unverified; the terminal's own records, signed by its first key,
// replace them, join their own cases, are exported once, and chain on.
func TestSquattersGiveWayWithoutKeys(t *testing.T) {
	h := newForgeryHall(t, true)
	h.serve()
	first := h.press(1)
	h.genuineWinsNoForgery(first)
	counted := 1
	base := h.seq
	var forged []string
	for i := uint64(1); i <= 3; i++ {
		f := forge(first, base+i, map[string]any{"satisfaction": 5, "prev": "", "sig": nil, "sigv": nil})
		h.publish(counter, f)
		forged = append(forged, f)
	}
	for i := range 3 {
		h.serve()
		rec := h.press(4 - i)
		counted++
		h.genuineWins(rec, forged[i], true)
	}
	h.serve()
	rec := h.press(1)
	counted++
	h.genuineWinsNoForgery(rec)
	h.tileShows(rec)
	_, rep := httpDo(t, "GET", h.api+"/api/v1/report?month="+time.Now().UTC().Format("2006-01"), "")
	if !strings.Contains(rep, fmt.Sprintf(`"rated": %d`, counted)) {
		t.Fatalf("report does not count %d ratings:\n%s", counted, rep)
	}
	h.ep.mu.Lock()
	if len(h.ep.accepted) != counted {
		t.Errorf("%d evaluations accepted, want %d: %v", len(h.ep.accepted), counted, h.ep.accepted)
	}
	h.ep.mu.Unlock()
	h.a.stop()
	h.c.kill()
	out, code := runCollector(t, h.bin, "verify", "-store", "-allow-unverified", "-config", h.conf)
	if code != 0 || !strings.Contains(out, "nothing flagged") {
		t.Fatalf("verify -store: exit %d:\n%s", code, out)
	}
}
