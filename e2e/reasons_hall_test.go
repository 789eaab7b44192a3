package e2e

import (
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

// TestReasonsInTheHall is the hall test: a 不满意 press and then a
// button within the reason window yield a rating and a reason record
// linked to it, both delivered; the evaluation of that case, the alert,
// the follow-up and the monthly report carry the reason. A 差评 without a
// reason is exported without one once its wait is over, and a press after
// the window is a rating press again.
func TestReasonsInTheHall(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, broker.URL(), "e2e-reasons", "hallrate/v1/#")
	bin := buildCollector(t)
	dir := t.TempDir()
	ep := &esupEndpoint{addr: fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t)),
		accepted: map[string]int{}, bodies: map[string]map[string]any{}, changed: make(chan struct{})}
	ep.up(t)
	conf, apiAddr := hallConf{ClientID: "collector-reasons", Broker: broker.URL(),
		Esup: fmt.Sprintf("url = \"http://%s/evaluations\"\nretry_min = \"50ms\"\nretry_max = \"400ms\"", ep.addr),
		More: "[followup]\nreason_wait = \"4s\""}.write(t, dir)
	api := "http://" + apiAddr
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)
	code, body := httpDo(t, "POST", api+"/api/v1/cases", "["+caseJSON("P-1", "W05", "A001")+","+caseJSON("P-2", "W05", "A002")+"]")
	if code != 200 {
		t.Fatalf("post cases: %d %s", code, body)
	}

	ad := filepath.Join(dir, "agent")
	os.MkdirAll(ad, 0o755)
	path := hallAgentConfig(t, ad, "w05-a", "W05", broker.URL())
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n[reasons]\nwindow = \"2s\"\n")
	f.Close()
	a := startAgent(t, path)
	a.waitLog(1, wait, "connected to broker")
	ticket := func(id string) {
		tk, _ := json.Marshal(record.Ticket{V: 1, Ticket: id, State: record.Done, Staff: "SW05", At: time.Now().Format(time.RFC3339)})
		mqtttest.Publish(t, broker.URL(), "hallrate/v1/h1/W05/ticket", 1, true, tk)
		a.waitLog(1, wait, "msg=ticket", "ticket="+id+" ")
	}

	// A001: 不满意, then 办事效率 within the window.
	ticket("A001")
	a.press(4)
	a.waitLog(1, wait, "asking for the reason")
	a.press(2)
	a.waitDurable(2, wait)
	// A002: 不满意, no reason; a press after the window is a rating again.
	ticket("A002")
	a.press(4)
	a.waitLog(1, wait, "no reason given within the window")
	a.press(2)
	a.waitDurable(4, wait)

	var recs []record.Press
	for _, m := range sub.Wait(t, wait, "four records", func(ms []mqtttest.Message) bool {
		n := 0
		for _, m := range ms {
			if strings.HasSuffix(m.Topic, "/rating") {
				n++
			}
		}
		return n >= 4
	}) {
		if strings.HasSuffix(m.Topic, "/rating") {
			p, err := record.DecodePress(m.Payload)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, p)
		}
	}
	d := distinct(t, recs)
	if len(d) != 4 || d[0].Disposition != record.Counted || d[0].Satisfaction != 2 ||
		!d[1].IsReason() || d[1].For != d[0].ID || d[1].Reason.Code != "speed" || d[1].Reason.Label != "办事效率" ||
		d[2].Disposition != record.Counted || d[2].Ticket.ID != "A002" ||
		d[3].IsReason() || d[3].Disposition != record.Repeat {
		t.Fatalf("records: %+v", d)
	}

	// Both evaluations go out, the first with its reason, the second
	// without one once its wait is over.
	ep.waitKeys(t, 2, 30*time.Second, c.String)
	ep.mu.Lock()
	withReason, without := ep.bodies[d[0].ID], ep.bodies[d[2].ID]
	ep.mu.Unlock()
	if withReason["reasonCode"] != "speed" || withReason["reasonText"] != "办事效率" || withReason["projectNo"] != "P-1" || withReason["satisfaction"] != "2" {
		t.Fatalf("evaluation of A001: %v", withReason)
	}
	if _, ok := without["reasonCode"]; ok || without["projectNo"] != "P-2" {
		t.Fatalf("evaluation of A002: %v", without)
	}

	// The alerts: the first carries the reason.
	alerts := map[string]map[string]any{}
	for _, m := range sub.Wait(t, wait, "two alerts", func(ms []mqtttest.Message) bool {
		n := 0
		for _, m := range ms {
			if m.Topic == "hallrate/v1/h1/alert" {
				n++
			}
		}
		return n >= 2
	}) {
		if m.Topic == "hallrate/v1/h1/alert" {
			var a map[string]any
			if err := json.Unmarshal(m.Payload, &a); err != nil {
				t.Fatal(err)
			}
			alerts[a["ratingId"].(string)] = a
		}
	}
	if a := alerts[d[0].ID]; a["reasonCode"] != "speed" || a["reasonText"] != "办事效率" || a["kind"] != "bad_rating" {
		t.Fatalf("alert of A001: %v", a)
	}
	if a := alerts[d[2].ID]; a == nil || a["reasonCode"] != nil {
		t.Fatalf("alert of A002: %v", a)
	}

	// The follow-up shows it, by API and on the live page.
	_, body = httpDo(t, "GET", api+"/api/v1/followups", "")
	if !strings.Contains(body, `"reasonText": "办事效率"`) {
		t.Fatalf("follow-ups: %s", body)
	}
	_, page := httpDo(t, "GET", api+"/", "")
	if !strings.Contains(page, `data-code="speed">办事效率</td>`) {
		t.Fatalf("the live page's follow-up lacks the reason:\n%s", page)
	}
	// The live view counts the month's reasons per counter and per staff.
	for _, want := range []string{`id="reasons-counter"`, `<tr data-key="W05"><td>W05</td><td>1</td>`,
		`id="reasons-staff"`, `<tr data-key="SW05"><td>SW05</td><td>1</td>`, `<th data-code="speed">办事效率</th>`} {
		if !strings.Contains(page, want) {
			t.Fatalf("the live page lacks %q:\n%s", want, page)
		}
	}
	// The monthly report counts it, per counter and per staff.
	month := time.Now().UTC().Format("2006-01")
	_, body = httpDo(t, "GET", api+"/api/v1/report?month="+month, "")
	var rep struct {
		Reasons struct {
			Codes []struct{ Code, Label string }
			Total struct {
				Counts []int64
				N      int64
			}
			ByStaff []struct {
				Key string
				N   int64
			} `json:"by_staff"`
		}
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	r := rep.Reasons
	if len(r.Codes) != 1 || r.Codes[0].Code != "speed" || r.Total.N != 1 || len(r.ByStaff) != 1 || r.ByStaff[0].Key != "SW05" {
		t.Fatalf("report reasons: %s", body)
	}
	_, page = httpDo(t, "GET", api+"/report?month="+month, "")
	if !strings.Contains(page, "不满意原因分布") || !strings.Contains(page, `<tr data-key="SW05"><td>SW05</td><td>1</td>`) {
		t.Fatalf("the printed report lacks the reasons:\n%s", page)
	}
	// And their CSV, for a spreadsheet.
	_, body = httpDo(t, "GET", api+"/api/v1/report?format=csv&part=reasons&month="+month, "")
	want := "month,group,key,code,label,n\n" + month + ",staff,SW05,speed,办事效率,1\n" +
		month + ",counter,W05,speed,办事效率,1\n" + month + ",total,total,speed,办事效率,1\n"
	if body != want {
		t.Fatalf("reasons CSV:\n%s\nwant\n%s", body, want)
	}
}
