package devkey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "device.key")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	k2, created, err := LoadOrCreate(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: created=%v err=%v same=%v", created, err, k1.Equal(k2))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
}

func TestRefusesReadableKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.key")
	if _, _, err := LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreate(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("mode %o: %v", mode, err)
		}
	}
}

func TestGarbageKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.key")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); err == nil {
		t.Fatal("garbage key accepted")
	}
}
