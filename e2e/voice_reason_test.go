package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/voice"
)

// aplayOrSkip returns aplay's path, skipping without alsa-utils unless
// HALLRATE_REQUIRE_APLAY is set.
func aplayOrSkip(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("aplay")
	if err != nil {
		if os.Getenv("HALLRATE_REQUIRE_APLAY") != "" {
			t.Fatal("HALLRATE_REQUIRE_APLAY is set and aplay is not installed (apt-get install alsa-utils)")
		}
		t.Skip("aplay not installed (apt-get install alsa-utils)")
	}
	return p
}

// writePrompts writes a short silent 16-bit PCM WAV file for every prompt.
func writePrompts(t *testing.T, dir string) {
	t.Helper()
	const rate, samples = 8000, 800
	var b []byte
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, 36+2*samples)
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, 1) // mono
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, 2*rate)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, 2*samples)
	b = append(b, make([]byte, 2*samples)...)
	for _, p := range voice.Prompts() {
		if err := os.WriteFile(filepath.Join(dir, string(p)+".wav"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// playerLog is the log of a wrapper around aplay that notes every prompt
// it is started for and then execs aplay on ALSA's null device.
type playerLog string

func newPlayer(t *testing.T, dir, aplay string) (string, playerLog) {
	t.Helper()
	log := filepath.Join(dir, "played.log")
	script := filepath.Join(dir, "aplay-logged")
	body := fmt.Sprintf("#!/bin/sh\nfor a; do last=$a; done\nbasename \"$last\" .wav >> %q\nexec %q \"$@\"\n", log, aplay)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, playerLog(log)
}

func (l playerLog) prompts() []string {
	b, _ := os.ReadFile(string(l))
	return strings.Fields(string(b))
}

// wait waits until the player has been started for want, in this order.
func (l playerLog) wait(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := l.prompts()
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) || time.Now().After(deadline) {
			t.Fatalf("prompts played %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reasonScenario drives the agent through ratings, a reason and a reason
// window that passes, waiting for each prompt where played is given, and
// returns the delivered records.
func reasonScenario(t *testing.T, b mqtttest.Broker, sub *mqtttest.Collector, a *agentProc, played func(...string)) []record.Press {
	t.Helper()
	a.waitLog(1, wait, "connected to broker")
	mqtttest.Publish(t, b.URL(), topics.ticket, 1, true, ticketJSON("A1", record.Done))
	a.waitLog(1, wait, "msg=ticket", "ticket=A1")
	played("invite")
	a.press(1) // 非常满意: thanks
	a.waitDurable(1, wait)
	played("invite", "thanks")
	mqtttest.Publish(t, b.URL(), topics.ticket, 1, true, ticketJSON("A2", record.Done))
	a.waitLog(1, wait, "msg=ticket", "ticket=A2")
	played("invite", "thanks", "invite")
	a.press(4) // 不满意: asks why
	a.waitLog(1, wait, "asking for the reason")
	played("invite", "thanks", "invite", "reason")
	a.press(2) // the reason: 办事效率
	a.waitDurable(3, wait)
	played("invite", "thanks", "invite", "reason", "thanks")
	a.press(3) // a rating press again: already rated
	a.waitDurable(4, wait)
	played("invite", "thanks", "invite", "reason", "thanks", "already")
	mqtttest.Publish(t, b.URL(), topics.ticket, 1, true, ticketJSON("A3", record.Done))
	a.waitLog(1, wait, "msg=ticket", "ticket=A3")
	played("invite", "thanks", "invite", "reason", "thanks", "already", "invite")
	a.press(4)
	a.waitLog(2, wait, "asking for the reason")
	a.waitLog(1, wait, "no reason given within the window")
	a.press(2) // after the window: a rating press
	a.waitDurable(6, wait)
	played("invite", "thanks", "invite", "reason", "thanks", "already", "invite", "reason", "already")
	return assertComplete(t, sub.Wait(t, wait, "six records", countDistinct(6)), 6)
}

func checkReasonRecords(t *testing.T, d []record.Press) {
	t.Helper()
	type view struct {
		kind        record.Kind
		disposition record.Disposition
		ticket      string
		reason      string
	}
	var got []view
	for _, p := range d {
		reason := ""
		if p.Reason != nil {
			reason = p.Reason.Code
		}
		got = append(got, view{p.Kind, p.Disposition, p.Ticket.ID, reason})
	}
	want := []view{
		{"", record.Counted, "A1", ""},
		{"", record.Counted, "A2", ""},
		{record.KindReason, "", "A2", "speed"},
		{"", record.Repeat, "A2", ""},
		{"", record.Counted, "A3", ""},
		{"", record.Repeat, "A3", ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("records\n%+v\nwant\n%+v", got, want)
	}
	if r := d[2]; r.For != d[1].ID || r.Reason.Label != "办事效率" || r.Button != 2 || r.Satisfaction != 0 {
		t.Fatalf("reason record %+v", r)
	}
}

const reasonConfig = `
[reasons]
window = "2s"
`

// TestReasonsAndVoice is the test: with the sim driver and aplay
// on ALSA's null device, invite, thanks, reason and already are played in
// order around real presses; a 不满意 press and then a button within the
// window yield a rating and a reason record linked to it; a press after
// the window is a rating press again.
func TestReasonsAndVoice(t *testing.T) {
	aplay := aplayOrSkip(t)
	dir := t.TempDir()
	writePrompts(t, dir)
	player, log := newPlayer(t, dir, aplay)
	m := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, m.URL(), "e2e-subscriber", prefix+"/#")
	a := startAgent(t, writeConfig(t, dir, "w05-a", m.URL(), reasonConfig+fmt.Sprintf(`
[voice]
enabled = true
device = "null"
dir = %q
player = %q
`, dir, player)))
	d := reasonScenario(t, m, sub, a, func(want ...string) { log.wait(t, want...) })
	checkReasonRecords(t, d)
	if n := a.count("voice prompt not played"); n != 0 {
		t.Fatalf("aplay on the null device failed:\n%s", a.log())
	}
}

// TestVoiceWithoutPlayer: a missing aplay changes nothing about recording;
// it is logged once and counted in /metrics.
func TestVoiceWithoutPlayer(t *testing.T) {
	dir := t.TempDir()
	writePrompts(t, dir)
	m := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, m.URL(), "e2e-subscriber", prefix+"/#")
	a := startAgent(t, writeConfig(t, dir, "w05-a", m.URL(), reasonConfig+fmt.Sprintf(`
[voice]
enabled = true
dir = %q
player = %q

[http]
listen = "127.0.0.1:0"
`, dir, filepath.Join(dir, "no-such-aplay"))))
	d := reasonScenario(t, m, sub, a, func(...string) {})
	checkReasonRecords(t, d)
	if n := a.count("voice prompt not played"); n != 1 {
		t.Fatalf("missing player logged %d times, want once:\n%s", n, a.log())
	}
	addr := regexp.MustCompile(`status endpoint listening" addr=(\S+)`).FindStringSubmatch(a.log())
	if addr == nil {
		t.Fatalf("no status endpoint:\n%s", a.log())
	}
	resp, err := http.Get("http://" + addr[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// Every prompt failed (a prompt replaced before it started is not
	// tried, so the count may be below the nine asked for).
	for _, want := range []string{"hallrate_agent_voice_prompts_played_total 0", "hallrate_agent_voice_working 0", "hallrate_agent_reasons_total 1"} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if f := regexp.MustCompile(`hallrate_agent_voice_prompts_failed_total ([1-9]\d*)\n`).FindSubmatch(body); f == nil {
		t.Errorf("/metrics counts no failed prompt:\n%s", body)
	}
}
