package e2e

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/esup"
	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/record"
)

// contractBlocks returns the example payloads of docs/contract.md: the
// fenced blocks after a <!-- check:NAME --> marker, by name, in order.
func contractBlocks(t *testing.T) (map[string]string, []string) {
	t.Helper()
	b, err := os.ReadFile("../docs/contract.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var order []string
	re := regexp.MustCompile("(?s)<!-- check:([a-z0-9-]+) -->\\s*```[a-z]*\\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		if _, dup := out[m[1]]; dup {
			t.Fatalf("example %s twice", m[1])
		}
		out[m[1]] = m[2]
		order = append(order, m[1])
	}
	return out, order
}

// strictly decodes a JSON object into v refusing members v does not have,
// and checks that v has no member the example lacks: the doc's example
// and the Go type list the same fields.
func strictly(t *testing.T, name, body string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var doc, round map[string]any
	json.Unmarshal([]byte(body), &doc)
	b, _ := json.Marshal(v)
	json.Unmarshal(b, &round)
	if a, b := slices.Sorted(maps.Keys(doc)), slices.Sorted(maps.Keys(round)); !slices.Equal(a, b) {
		t.Fatalf("%s: the example has %v, the payload %v", name, a, b)
	}
}

// TestContractExamples: every example payload of docs/contract.md decodes
// with the decoder its consumers use; the example records are one signed
// chain that verifies under the published test key and shows every
// disposition and a reason; the worked signature example verifies.
func TestContractExamples(t *testing.T) {
	blocks, order := contractBlocks(t)
	pub, err := record.DecodePublicKey(blocks["sig-pubkey"])
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	kinds := map[string]bool{}
	prev := ""
	for _, name := range order {
		body := blocks[name]
		switch {
		case strings.HasPrefix(name, "record-"):
			p, err := record.DecodePress([]byte(body))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := p.Verify(pub); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if p.Prev != prev {
				t.Fatalf("%s: prev %q, want the hash of the example before (%q)", name, p.Prev, prev)
			}
			prev = p.ChainHash()
			if p.IsReason() {
				kinds["reason"] = true
			} else {
				kinds[string(p.Disposition)] = true
			}
		case name == "sig-record":
			p, err := record.DecodePress([]byte(body))
			if err != nil || p.Verify(pub) != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case strings.HasPrefix(name, "status-"):
			s, err := record.DecodeStatus([]byte(body))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var st record.Status
			strictly(t, name, body, &st)
			if name == "status-stopped" && (s.Online || s.Epoch == "" || s.LastSeq == nil || s.Pending == nil || s.StoppedAt == "") {
				t.Fatalf("%s lacks what a clean stop carries: %+v", name, s)
			}
		case strings.HasPrefix(name, "ticket-"):
			if _, err := record.DecodeTicket([]byte(body)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case name == "stored":
			if _, err := record.DecodeStored([]byte(body)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			strictly(t, name, body, &record.Stored{})
		case name == "alert":
			strictly(t, name, body, &ingest.Alert{})
		case name == "evaluation":
			strictly(t, name, body, &esup.Payload{})
		case name == "case":
			cs, err := esup.DecodeCases(bytes.NewReader([]byte(body)), time.UTC, time.Now())
			if err != nil || len(cs) != 1 || cs[0].TaskCode == "" || cs[0].TaskName == "" || cs[0].DeptCode == "" || cs[0].DeptName == "" {
				t.Fatalf("%s: %+v %v", name, cs, err)
			}
		case strings.HasPrefix(name, "sig-"):
			continue // record/contract_test.go checks the worked example byte for byte
		default:
			t.Fatalf("example %s: no check for it", name)
		}
		checked[name] = true
	}
	for _, k := range []string{"counted", "repeat", "late", "no_ticket", "reason"} {
		if !kinds[k] {
			t.Errorf("no example record of %s", k)
		}
	}
	for _, n := range []string{"status-online", "status-stopped", "status-will", "ticket-serving", "ticket-done", "ticket-idle",
		"stored", "alert", "case", "evaluation", "sig-record"} {
		if !checked[n] {
			t.Errorf("example %s missing", n)
		}
	}
}
