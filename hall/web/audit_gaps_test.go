package web

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
)

// TestAuditGapListedOnce: a gap below the highest seq received is listed
// once, not again as missing by the status; the tail the status alone
// shows is listed apart; the audit JSON says from/to.
func TestAuditGapListedOnce(t *testing.T) {
	var d hallData
	d.Audit.Streams = []store.StreamAudit{{Device: "w05-a", Epoch: "e1", Received: 7, MaxSeq: 10,
		Gaps: store.Ranges{{From: 3, To: 5}}}}
	d.Audit.Devices = []store.DeviceAudit{{Device: "w05-a", Hall: "h1", Counter: "W05", Audited: true, Epoch: "e1",
		LastSeq: 13, Pending: 1, Missing: store.Ranges{{From: 3, To: 5}, {From: 11, To: 12}}}}
	v := auditRows(auditView{}, d, "h1", time.UTC)
	if len(v.Gaps) != 2 || v.Gaps[0] != "w05-a e1: 3-5 (3)" || v.Gaps[1] != "w05-a e1 ≤ 12: 11-12 (2)" {
		t.Fatalf("gaps %q", v.Gaps)
	}
	if n := strings.Count(strings.Join(v.Gaps, "\n"), "3-5"); n != 1 {
		t.Fatalf("gap 3-5 listed %d times: %q", n, v.Gaps)
	}
	b, _ := json.Marshal(d.Audit.Devices[0].Missing)
	if string(b) != `[{"from":3,"to":5},{"from":11,"to":12}]` {
		t.Fatalf("missing as JSON: %s", b)
	}
}
