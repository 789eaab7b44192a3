package secretfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		mode os.FileMode
		want string // the secret, or part of the error
	}{
		{0o600, "s3cret"},
		{0o640, "s3cret"},
		{0o400, "s3cret"},
		{0o644, "has mode 0644: others may read it"},
		{0o604, "has mode 0604"},
		{0o602, "has mode 0602"},
	} {
		p := filepath.Join(dir, c.mode.String())
		if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, c.mode); err != nil {
			t.Fatal(err)
		}
		got, err := Read(p)
		if err != nil {
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%04o: %v, want %q on one line", c.mode, err, c.want)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%04o: %q, want %q", c.mode, got, c.want)
		}
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}
