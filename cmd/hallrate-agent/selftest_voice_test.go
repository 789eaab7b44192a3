package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/voice"
)

// voiceDir writes a prompt file for every prompt and a player that notes
// each file it is given, and returns the directory, the player and its log.
func voiceDir(t *testing.T) (dir, player, log string) {
	t.Helper()
	dir = t.TempDir()
	for _, p := range voice.Prompts() {
		if err := os.WriteFile(filepath.Join(dir, string(p)+".wav"), []byte("RIFF"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log = filepath.Join(dir, "played.log")
	player = filepath.Join(dir, "player")
	body := fmt.Sprintf("#!/bin/sh\nfor a; do last=$a; done\nbasename \"$last\" .wav >> %q\n", log)
	if err := os.WriteFile(player, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, player, log
}

// The selftest plays every prompt and asks whether it was heard.
func TestSelftestVoice(t *testing.T) {
	dir, player, log := voiceDir(t)
	answers := make(chan string, 5)
	for _, a := range []string{"y", "y", "n", "y", "yes"} {
		answers <- a
	}
	var out bytes.Buffer
	st := &selftest{
		cfg: config.Config{Voice: config.Voice{Enabled: true, Dir: dir, Player: player, Volume: 100, Device: "null"}},
		out: &out, timeout: selftestPatience, confirm: true, answers: answers,
		log: slog.New(slog.DiscardHandler), clock: clockwork.NewRealClock(),
	}
	if err := st.speak(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "invite thanks already reason error" {
		t.Fatalf("played %v", got)
	}
	for _, want := range []string{"ok    voice invite: heard", "FAIL  voice already: not heard", "ok    voice error: heard"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if st.failed != 1 || st.checks != 5 {
		t.Fatalf("%d of %d failed", st.failed, st.checks)
	}
}

// A missing player or prompt file fails its check with the reason.
func TestSelftestVoiceMissing(t *testing.T) {
	dir, player, _ := voiceDir(t)
	os.Remove(filepath.Join(dir, "reason.wav"))
	var out bytes.Buffer
	st := &selftest{
		cfg: config.Config{Voice: config.Voice{Enabled: true, Dir: dir, Player: player, Volume: 100}},
		out: &out, timeout: selftestPatience, confirm: true,
		log: slog.New(slog.DiscardHandler), clock: clockwork.NewRealClock(),
	}
	if err := st.speak(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.failed != 1 || !strings.Contains(out.String(), "FAIL  voice reason: prompt reason:") ||
		!strings.Contains(out.String(), "ok    voice invite: played") {
		t.Fatalf("%d failed:\n%s", st.failed, out.String())
	}
	st = &selftest{
		cfg: config.Config{Voice: config.Voice{Enabled: true, Dir: dir, Player: filepath.Join(dir, "no-aplay"), Volume: 100}},
		out: &out, timeout: selftestPatience, log: slog.New(slog.DiscardHandler), clock: clockwork.NewRealClock(),
	}
	if err := st.speak(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.failed != 5 {
		t.Fatalf("%d of 5 failed with no player:\n%s", st.failed, out.String())
	}
}
