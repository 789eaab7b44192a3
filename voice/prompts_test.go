package voice

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDefaultPrompts makes the default prompts from their text as "make
// voice" does, twice, and checks that every prompt has a text, that the
// same text makes the same file, and that each is 16-bit PCM (which the
// volume setting scales).
func TestDefaultPrompts(t *testing.T) {
	espeak, err := exec.LookPath("espeak-ng")
	if err != nil {
		if os.Getenv("HALLRATE_REQUIRE_ESPEAK") != "" {
			t.Fatal("HALLRATE_REQUIRE_ESPEAK is set and espeak-ng is not installed (apt-get install espeak-ng)")
		}
		t.Skip("espeak-ng not installed (apt-get install espeak-ng)")
	}
	dir := t.TempDir()
	for _, p := range Prompts() {
		text := filepath.Join("..", "packaging", "voice", "zh", string(p)+".txt")
		if _, err := os.Stat(text); err != nil {
			t.Fatalf("prompt %s has no text: %v", p, err)
		}
		var made [2][]byte
		for i := range made {
			out := filepath.Join(dir, string(p)+".wav")
			// The arguments of the Makefile's voice target.
			cmd := exec.Command(espeak, "-v", "cmn-latn-pinyin", "-s", "150", "-w", out, "-f", text)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("espeak-ng %s: %v: %s", p, err, b)
			}
			if made[i], err = os.ReadFile(out); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(made[0], made[1]) {
			t.Errorf("prompt %s: the same text made two different files", p)
		}
		if len(made[0]) < 8000 {
			t.Errorf("prompt %s: %d bytes, too short to be speech", p, len(made[0]))
		}
		if bytes.Equal(Scale(made[0], 50), made[0]) {
			t.Errorf("prompt %s: not a 16-bit PCM WAV file", p)
		}
	}
}
