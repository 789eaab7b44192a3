package voice

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakePlayer writes a player script that notes "pid prompt" and then
// plays for as long as the test lets it (it waits for a file that never
// comes), so the test sees one prompt cut another.
func fakePlayer(t *testing.T, dir string) (script, log string) {
	t.Helper()
	log = filepath.Join(dir, "played.log")
	script = filepath.Join(dir, "player")
	body := fmt.Sprintf("#!/bin/sh\nfor a; do last=$a; done\necho \"$$ $(basename \"$last\" .wav)\" >> %q\nexec sleep 600\n", log)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range Prompts() {
		if err := os.WriteFile(filepath.Join(dir, string(p)+".wav"), []byte("RIFF"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return script, log
}

type started struct {
	pid    int
	prompt string
}

func waitStarted(t *testing.T, log string, n int) []started {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(log)
		var out []started
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			pid, prompt, ok := strings.Cut(l, " ")
			if n, err := strconv.Atoi(pid); ok && err == nil {
				out = append(out, started{n, prompt})
			}
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("player started %d times, want %d", len(out), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid is a running process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestNewerPromptCutsOlder(t *testing.T) {
	dir := t.TempDir()
	script, log := fakePlayer(t, dir)
	p := New(Config{Player: script, Dir: dir, Volume: 100, Device: "null"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	p.Say(Invite)
	first := waitStarted(t, log, 1)[0]
	if first.prompt != "invite" || !alive(first.pid) {
		t.Fatalf("first prompt %+v", first)
	}
	p.Say(Thanks)
	second := waitStarted(t, log, 2)[1]
	if second.prompt != "thanks" {
		t.Fatalf("second prompt %+v", second)
	}
	if alive(first.pid) {
		t.Fatalf("the older prompt's player %d still runs", first.pid)
	}
	cancel()
	<-done
	if alive(second.pid) {
		t.Fatalf("the player %d outlived Run", second.pid)
	}
	if s := p.Stats(); s.Played != 1 || s.Failed != 0 || !s.Working {
		t.Fatalf("stats %+v", s)
	}
}

func TestMissingPlayer(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	p := New(Config{Player: filepath.Join(dir, "nothing"), Dir: dir, Volume: 100, Logger: newLogger(&logs)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	for i := 0; i < 3; i++ {
		p.Say(Thanks)
		deadline := time.Now().Add(10 * time.Second)
		for p.Stats().Failed < int64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("stats %+v", p.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n := strings.Count(logs.String(), "voice prompt not played"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs.String())
	}
	if s := p.Stats(); s.Working || s.Played != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Say never blocks, whatever the player does.
func TestSayNeverBlocks(t *testing.T) {
	p := New(Config{Player: "true"})
	for i := 0; i < 1000; i++ {
		p.Say(Prompts()[i%5])
	}
}

func TestScale(t *testing.T) {
	var b []byte
	b = append(b, "RIFF\x00\x00\x00\x00WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	for _, v := range []uint16{1, 1} {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, 8000)
	b = binary.LittleEndian.AppendUint32(b, 16000)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, 6)
	for _, s := range []int16{1000, -1000, 32767} {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	got := Scale(b, 50)
	var want []int16
	for i := len(got) - 6; i < len(got); i += 2 {
		want = append(want, int16(binary.LittleEndian.Uint16(got[i:])))
	}
	if want[0] != 500 || want[1] != -500 || want[2] != 16383 {
		t.Fatalf("scaled samples %v", want)
	}
	if !bytes.Equal(b[:len(b)-6], got[:len(got)-6]) {
		t.Fatal("the header changed")
	}
	if int16(binary.LittleEndian.Uint16(b[len(b)-6:])) != 1000 {
		t.Fatal("Scale changed its input")
	}
	if g := Scale(b, 100); !bytes.Equal(g, b) {
		t.Fatal("volume 100 changed the file")
	}
	if g := Scale([]byte("not a wav"), 10); string(g) != "not a wav" {
		t.Fatal("a non-WAV file changed")
	}
	b8 := bytes.Clone(b)
	binary.LittleEndian.PutUint16(b8[34:], 8)
	if g := Scale(b8, 10); !bytes.Equal(g, b8) {
		t.Fatal("8-bit PCM changed")
	}
}
