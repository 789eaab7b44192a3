// Package secretfile reads the small files that hold a password or token,
// refusing one that every user of the machine may read.
package secretfile

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSize bounds a secret file: a password or token, not a document.
const maxSize = 64 << 10

// Read returns the contents of the secret file at path without its final
// line break. A file that others (not the owner, not the group) may read,
// write or execute is refused: the group is how a service user is given
// the file (root:hallrate 0640).
func Read(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return "", fmt.Errorf("%s has mode %04o: others may read it; chmod o-rwx (0600, or 0640 for the service's group)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSize {
		return "", fmt.Errorf("%s is larger than %d bytes: not a secret file", path, maxSize)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
